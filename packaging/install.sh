#!/bin/bash
# Builds safeexec from this checkout and installs it under a prefix:
#
#   DIR/bin/safeexec                       0755 root:root
#   DIR/libexec/safeexec/safeexec-helper   4754 root:GROUP  (setuid root; only
#                                          members of GROUP may execute it)
#   SYSCONFDIR/safeexec/policy             0644 root:root   (only if absent)
#   /etc/systemd/system/safeexec.service   0644 root:root   (--prefix /usr or
#                                          /usr/local on a systemd host: the
#                                          runs' cgroup subtree, started)
#
# SYSCONFDIR is /etc for --prefix /usr, else DIR/etc. The policy path is
# compiled into the helper (SAFEEXEC_POLICY_PATH) and the helper's path
# into the frontend (SAFEEXEC_HELPER_PATH), so every prefix gets its own
# build. Running it again changes nothing that is already right, and it
# never overwrites an existing policy.
#
# Usage: packaging/install.sh --prefix DIR [--group NAME]
set -euo pipefail
umask 022

prog=install.sh
die() {
    echo "$prog: error: $*" >&2
    exit 1
}
warn() {
    echo "$prog: warning: $*" >&2
}
usage() {
    echo "usage: $prog --prefix DIR [--group NAME]"
    echo "  --prefix DIR   install into DIR/bin and DIR/libexec/safeexec (absolute path)"
    echo "  --group NAME   group allowed to run the setuid helper (default: safeexec;"
    echo "                 created as a system group if missing)"
    echo "Builds with cargo (release) and must run as root."
}

prefix=
group=safeexec
while [ $# -gt 0 ]; do
    case "$1" in
    --prefix)
        [ $# -ge 2 ] || die "--prefix needs a directory"
        prefix=$2
        shift 2
        ;;
    --prefix=*)
        prefix=${1#--prefix=}
        shift
        ;;
    --group)
        [ $# -ge 2 ] || die "--group needs a group name"
        group=$2
        shift 2
        ;;
    --group=*)
        group=${1#--group=}
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        die "unknown argument '$1' (see --help)"
        ;;
    esac
done

[ -n "$prefix" ] || die "--prefix DIR is required (see --help)"
case "$prefix" in
/*) ;;
*) die "--prefix must be an absolute path, not '$prefix'" ;;
esac
case "$prefix" in
*[[:space:]]* | *:*) die "--prefix must not contain white space or ':'" ;;
esac
# Normalise: no trailing slashes (but keep "/").
while [ "${#prefix}" -gt 1 ] && [ "${prefix%/}" != "$prefix" ]; do
    prefix=${prefix%/}
done
[[ "$group" =~ ^[a-z_][a-z0-9_-]*$ ]] || die "'$group' is not a valid group name"
[ "$(id -u)" -eq 0 ] || die "must be run as root (try: sudo $0 --prefix $prefix --group $group)"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -f "$repo/Cargo.toml" ] && [ -d "$repo/helper" ] || die "cannot find the safeexec workspace at $repo"
[ -f "$repo/packaging/policy" ] || die "missing $repo/packaging/policy"

if [ "$prefix" = /usr ]; then
    sysconfdir=/etc
else
    sysconfdir=$prefix/etc
fi
policy_path=$sysconfdir/safeexec/policy
# The helper's state (the uid allocator), compiled in like the policy path.
if [ "$prefix" = /usr ]; then
    state_dir=/var/lib/safeexec
else
    state_dir=$prefix/var/lib/safeexec
fi
bindir=$prefix/bin
helperdir=$prefix/libexec/safeexec

# Who builds: under sudo, the invoking user with their own toolchain (the
# build needs no privilege, and root usually has no rustup toolchain);
# otherwise root, with cargo from $CARGO, PATH or /root/.cargo/bin.
build_user=
cargo=${CARGO:-}
if [ -z "$cargo" ] && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    sudo_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    if [ -n "$sudo_home" ] && [ -x "$sudo_home/.cargo/bin/cargo" ]; then
        build_user=$SUDO_USER
        cargo=$sudo_home/.cargo/bin/cargo
    fi
fi
if [ -z "$cargo" ]; then
    if command -v cargo >/dev/null 2>&1; then
        cargo=cargo
    elif [ -x /root/.cargo/bin/cargo ]; then
        cargo=/root/.cargo/bin/cargo
    else
        die "cargo not found (set CARGO=/path/to/cargo, or add it to PATH)"
    fi
fi
target_dir=${CARGO_TARGET_DIR:-$repo/target/install}
# The build runs from / (below): a relative one is made absolute here.
case "$target_dir" in
/*) ;;
*) target_dir=$PWD/$target_dir ;;
esac

# Every existing entry on the way to DIR (and to where its links lead)
# must belong to root or to one of the uids given, and be writable by
# nobody else unless it is a sticky directory (/tmp): what root writes
# there (the setuid helper), or copies from there (the built binaries),
# nobody else can swap. A review put a setuid-root file of its own in
# place of the helper through a prefix directory it owned, and binaries
# of its own through a checkout directory it had made for root's clone.
check_way() {
    local dir=$1 what=$2 allowed=" 0 ${3:-} " path= part uid mode
    local IFS=/
    for part in $dir; do
        [ -n "$part" ] || continue
        path=$path/$part
        if [ ! -e "$path" ] && [ ! -L "$path" ]; then
            # Made later, by root: only if nobody else could make it first
            # (a sticky directory lets anyone; a review made the prefix
            # during the build and had its own helper installed).
            local parent=${path%/*}
            parent=${parent:-/}
            uid=$(stat -c %u -- "$parent")
            mode=$(stat -c %a -- "$parent")
            case "$allowed" in
            *" $uid "*) ;;
            *) die "$what: $path does not exist, and $parent belongs to uid $uid, who could make it first" ;;
            esac
            if [ $((8#$mode & 8#022)) -ne 0 ]; then
                die "$what: $path does not exist, and $parent may be written by others (mode $mode), who could make it first; make it yourself"
            fi
            break
        fi
        uid=$(stat -c %u -- "$path")
        mode=$(stat -c %a -- "$path")
        case "$allowed" in
        *" $uid "*) ;;
        *) die "$what: $path belongs to uid $uid, who could replace what is installed or built there; use a path only root (or the builder) owns" ;;
        esac
        if [ ! -L "$path" ] && [ $((8#$mode & 8#022)) -ne 0 ] && [ $((8#$mode & 8#1000)) -eq 0 ]; then
            die "$what: $path may be written by others (mode $mode); use a path only root (or the builder) may change"
        fi
    done
    local real
    real=$(realpath -m -- "$dir")
    if [ "$real" != "$dir" ]; then
        check_way "$real" "$what" "${3:-}"
    fi
}
# The checkout and the build may also be the builder's, or the sudo
# user's: whoever ran sudo could act as root anyway.
builder_uids=
if [ -n "$build_user" ]; then
    builder_uids=$(id -u "$build_user")
fi
if [ -n "${SUDO_UID:-}" ]; then
    builder_uids="$builder_uids $SUDO_UID"
fi
check_way "$prefix" "--prefix"
check_way "$sysconfdir" "the policy's directory"
check_way "$state_dir" "the state directory"
check_way "$repo" "the checkout" "$builder_uids"
check_way "$target_dir" "the build directory" "$builder_uids"

# Creates every missing component of a directory as 0755 root:root; leaves
# existing directories alone.
make_dir() {
    local dir=$1 path= part
    local IFS=/
    for part in $dir; do
        [ -n "$part" ] || continue
        path=$path/$part
        if [ ! -d "$path" ]; then
            [ ! -e "$path" ] || die "$path exists and is not a directory"
            mkdir -m 0755 "$path"
            chown root:root "$path"
            chmod 0755 "$path"
            echo "created directory $path"
        fi
    done
}

# Installs a file atomically: copy to a temporary name beside the
# destination, set owner, then mode (chown clears the setuid bit, so chmod
# comes last), then rename over the destination.
install_file() {
    local src=$1 dest=$2 owner=$3 mode=$4
    local tmp
    tmp=$(dirname "$dest")/.$(basename "$dest").new.$$
    rm -f "$tmp"
    cp "$src" "$tmp"
    chown "$owner" "$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$dest"
}

# Runs a command in the build's environment (as the sudo user, if any).
build_env() {
    if [ -n "$build_user" ]; then
        runuser -u "$build_user" -- env "HOME=$sudo_home" "PATH=$sudo_home/.cargo/bin:/usr/local/bin:/usr/bin:/bin" "$@"
    else
        "$@"
    fi
}

# Both binaries are linked statically: the setuid helper then runs no
# dynamic loader at all, and each run saves the loader's work twice.
# (--target keeps the flag away from build scripts and proc macros.)
# Against musl, not glibc: glibc's static start-up asks the CPU about its
# features and caches some forty times (CPUID, which a virtual machine
# traps: about 5.6 us each here), twice per run, once for each binary.
# Measured on the benchmark's machine kind, the musl build's run starts
# about 0.3 to 0.4 ms sooner; the README has the figures ("Which build").
# Rust's musl target brings its own C library; rustup adds it beside
# cargo. Without it (offline, no rustup) the build is against glibc.
static="-C target-feature=+crt-static"
command -v cc >/dev/null 2>&1 || die "building needs a C compiler: apt-get install gcc"
tools=$(dirname "$(command -v "$cargo" || echo "$cargo")")
# Every cargo and rustup command runs from /, the manifest named: both read
# configuration (`.cargo/config.toml`, `rust-toolchain.toml`) from every
# directory above the one they run in, and in a sticky directory such as
# /tmp anyone may put one (a review ran a rustc wrapper of its own as root
# so, during the build of the helper).
has_target() {
    local rustc=$tools/rustc
    [ -x "$rustc" ] || rustc=rustc
    [ -d "$(cd / && build_env "$rustc" --print sysroot)/lib/rustlib/$1/lib" ]
}
triple=$(uname -m)-unknown-linux-musl
if ! has_target "$triple"; then
    rustup=$tools/rustup
    [ -x "$rustup" ] || rustup=$(command -v rustup || true)
    if [ -n "$rustup" ]; then
        echo "adding the Rust target $triple (rustup target add)"
        (cd / && build_env timeout 300 "$rustup" target add "$triple" </dev/null) || true
    fi
fi
if ! has_target "$triple"; then
    triple=$(uname -m)-unknown-linux-gnu
    echo "install.sh: note: no Rust target for musl; building against glibc (a slower start-up)" >&2
    if [ "$(cc -print-file-name=libc.a)" = libc.a ]; then
        die "building against glibc needs its static library: apt-get install libc6-dev"
    fi
fi
echo "building safeexec (release, $triple) in $target_dir, policy path $policy_path${build_user:+, as $build_user}"
if [ -n "$build_user" ]; then
    runuser -u "$build_user" -- mkdir -p "$target_dir" || true
    if ! runuser -u "$build_user" -- test -w "$target_dir"; then
        die "$build_user cannot write $target_dir (remove it, or set CARGO_TARGET_DIR)"
    fi
    (
        cd /
        runuser -u "$build_user" -- env "HOME=$sudo_home" "PATH=$sudo_home/.cargo/bin:/usr/local/bin:/usr/bin:/bin" \
            "SAFEEXEC_POLICY_PATH=$policy_path" "SAFEEXEC_STATE_DIR=$state_dir" "SAFEEXEC_HELPER_PATH=$helperdir/safeexec-helper" "CARGO_TARGET_DIR=$target_dir" "RUSTFLAGS=$static" \
            "$cargo" build --manifest-path "$repo/Cargo.toml" --release --locked --target "$triple" -p safeexec -p safeexec-helper
    ) || die "cargo build (as $build_user) failed"
else
    (
        cd /
        SAFEEXEC_POLICY_PATH=$policy_path SAFEEXEC_STATE_DIR=$state_dir SAFEEXEC_HELPER_PATH=$helperdir/safeexec-helper CARGO_TARGET_DIR=$target_dir RUSTFLAGS=$static \
            "$cargo" build --manifest-path "$repo/Cargo.toml" --release --locked --target "$triple" -p safeexec -p safeexec-helper
    ) || die "cargo build failed"
fi
built=$target_dir/$triple/release
[ -x "$built/safeexec" ] || die "build produced no $built/safeexec"
[ -x "$built/safeexec-helper" ] || die "build produced no $built/safeexec-helper"

if ! getent group "$group" >/dev/null; then
    groupadd --system "$group" || die "cannot create group $group"
    echo "created system group $group"
fi

make_dir "$bindir"
make_dir "$helperdir"
make_dir "$sysconfdir/safeexec"
make_dir "$state_dir"

install_file "$built/safeexec" "$bindir/safeexec" root:root 0755
echo "installed $bindir/safeexec (0755 root:root)"
install_file "$built/safeexec-helper" "$helperdir/safeexec-helper" "root:$group" 4754
echo "installed $helperdir/safeexec-helper (4754 root:$group)"

if [ -e "$policy_path" ] || [ -L "$policy_path" ]; then
    echo "kept existing policy $policy_path"
else
    install_file "$repo/packaging/policy" "$policy_path" root:root 0644
    echo "installed policy $policy_path (0644 root:root)"
fi

# The helper refuses a policy that is not root's or that others may write.
if [ -f "$policy_path" ]; then
    owner=$(stat -c %u "$policy_path")
    mode=$(stat -c %a "$policy_path")
    [ "$owner" = 0 ] || warn "$policy_path is not owned by root: the helper will refuse it"
    if (((8#$mode & 8#022) != 0)); then
        warn "$policy_path is writable by group or others: the helper will refuse it"
    fi
fi

# Warn when the sandbox ids overlap ids in use: a run must never get the
# uid or gid of an existing user, group or subordinate id range.
policy_value() {
    local key=$1 default=$2 value
    value=$(sed -n "s/^[[:space:]]*$key[[:space:]]*=[[:space:]]*\\([^#[:space:]]*\\).*/\\1/p" \
        "$policy_path" 2>/dev/null | tail -n 1)
    echo "${value:-$default}"
}
uid_base=$(policy_value uid_base 1879048192)
uid_count=$(policy_value uid_count 4194304)
gid=$(policy_value gid per-run)

# Lists the overlaps of [lo, hi) with the ids of a passwd/group style file
# (field 3) or a subuid style file (name:start:count).
ids_in_range() {
    local file=$1 kind=$2 lo=$3 hi=$4
    [ -r "$file" ] || return 0
    awk -F: -v lo="$lo" -v hi="$hi" -v kind="$kind" '
        /^[[:space:]]*(#|$)/ { next }
        kind == "id" && $3 ~ /^[0-9]+$/ && $3 + 0 >= lo && $3 + 0 < hi { print $1 " (" $3 ")" }
        kind == "range" && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ && $2 + 0 < hi && $2 + $3 > lo {
            print $1 " (" $2 "-" $2 + $3 - 1 ")"
        }' "$file"
}
warn_overlaps() {
    local what=$1 file=$2 kind=$3 lo=$4 hi=$5 hits
    hits=$(ids_in_range "$file" "$kind" "$lo" "$hi" | paste -sd ' ')
    if [ -n "$hits" ]; then
        warn "the policy's sandbox $what range [$lo, $hi) overlaps $file: $hits"
    fi
}
if [[ "$uid_base" =~ ^[0-9]+$ ]] && [[ "$uid_count" =~ ^[0-9]+$ ]]; then
    uid_end=$((uid_base + uid_count))
    warn_overlaps uid /etc/passwd id "$uid_base" "$uid_end"
    warn_overlaps uid /etc/subuid range "$uid_base" "$uid_end"
    if [ "$gid" = per-run ]; then
        # Each run's gid equals its uid.
        warn_overlaps gid /etc/group id "$uid_base" "$uid_end"
        warn_overlaps gid /etc/subgid range "$uid_base" "$uid_end"
    fi
else
    warn "cannot read uid_base/uid_count from $policy_path; skipped the overlap check"
fi
if [[ "$gid" =~ ^[0-9]+$ ]]; then
    hits=$(ids_in_range /etc/group id "$gid" "$((gid + 1))" | paste -sd ' ')
    [ -z "$hits" ] || warn "the policy's sandbox gid $gid belongs to an existing group: $hits"
fi

# The system installation on a systemd host gets the unit that holds
# safeexec's cgroup subtree (Delegate=yes; packaging/systemd). Other
# prefixes (tests, side-by-side builds) leave systemd alone: their runs use
# the subtree the helper makes at first use.
if { [ "$prefix" = /usr ] || [ "$prefix" = /usr/local ]; } && [ -d /run/systemd/system ]; then
    install_file "$repo/packaging/systemd/safeexec.service" /etc/systemd/system/safeexec.service root:root 0644
    if systemctl daemon-reload && systemctl enable --now safeexec.service; then
        echo "installed and started safeexec.service (the runs' cgroup subtree)"
    else
        warn "safeexec.service did not start: runs use a cgroup subtree the helper makes"
    fi
fi

echo "safeexec installed under $prefix (helper group $group, policy $policy_path)"
