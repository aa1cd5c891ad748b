#!/usr/bin/env bash
# CI check of the packages, run as root by .ci/run after the tests:
#
#   1. installs the tools it needs (lintian, rpm, binutils);
#   2. builds the .deb and the .rpm (packaging/build-packages.sh), twice, and
#      checks that the second build gives the same bytes;
#   3. lintian on the .deb: no error;
#   4. dpkg -i; the helper must be 4754 root:safeexec through a statoverride;
#   5. a fresh user in group safeexec runs /usr/bin/safeexec --exec /bin/echo hi
#      and gets "hi" and an OK report; a fresh user outside the group cannot
#      start the helper (permission denied, non-zero exit);
#   6. dpkg --purge; no file of the package, no statoverride and no network
#      namespace the helper kept is left;
#   7. the .rpm: helper -rwsr-xr-- root safeexec, policy %config(noreplace).
#
# It installs and purges the package safeexec and adds and deletes two users
# on this machine: run it on a CI or throw-away machine only.
#
# SAFEEXEC_CI_SKIP_RUN=1 skips the end-to-end run of step 5 (not the refusal)
# while the helper cannot run programs yet; it says so loudly.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

HELPER=/usr/libexec/safeexec/safeexec-helper
failures=0

step() { printf '\n==== ci-packages: %s\n' "$*"; }
ok() { echo "ci-packages: ok: $*"; }
fail() {
    echo "ci-packages: FAIL: $*" >&2
    failures=$((failures + 1))
}
die() {
    echo "ci-packages: FATAL: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (it installs a package and adds users)"

# --- tools ------------------------------------------------------------------

step "tools"
missing=()
command -v lintian >/dev/null || missing+=(lintian)
command -v rpmbuild >/dev/null || missing+=(rpm)
command -v readelf >/dev/null || missing+=(binutils)
command -v setpriv >/dev/null || missing+=(util-linux)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
ok "lintian $(lintian --version | awk '{print $2}'), $(rpmbuild --version)"

# --- build, twice -------------------------------------------------------------

step "build the packages"
packaging/build-packages.sh
out=$root/target/packages
shopt -s nullglob
debs=("$out"/safeexec_*.deb)
rpms=("$out"/safeexec-*.rpm)
shopt -u nullglob
[ "${#debs[@]}" = 1 ] || die "expected one .deb in target/packages, found ${#debs[@]}"
[ "${#rpms[@]}" = 1 ] || die "expected one .rpm in target/packages, found ${#rpms[@]}"
deb=${debs[0]}
rpm=${rpms[0]}
first=$(sha256sum "$deb" "$rpm")

step "rebuild: same bytes?"
packaging/build-packages.sh >/dev/null 2>&1 || die "the second build failed"
second=$(sha256sum "$deb" "$rpm")
echo "$second"
if [ "$first" = "$second" ]; then
    ok "the packages are reproducible (same SOURCE_DATE_EPOCH, same bytes)"
else
    fail "a rebuild gave different bytes:"$'\n'"$first"$'\n'"$second"
fi

# --- the .deb ------------------------------------------------------------------

step "dpkg-deb -c $(basename "$deb")"
dpkg-deb -c "$deb"
dpkg-deb -I "$deb"

expect_deb_entry() { # mode owner path
    if dpkg-deb -c "$deb" | awk -v m="$1" -v o="$2" -v p="./$3" \
        '$1 == m && $2 == o && $6 == p { found = 1 } END { exit !found }'; then
        ok "deb: $1 $2 $3"
    else
        fail "deb: expected $1 $2 $3"
    fi
}
expect_deb_entry -rwxr-xr-x root/root usr/bin/safeexec
expect_deb_entry -rwsr-xr-- root/root usr/libexec/safeexec/safeexec-helper
expect_deb_entry -rw-r--r-- root/root etc/safeexec/policy
for f in usr/share/man/man1/safeexec.1.gz usr/share/man/man8/safeexec-helper.8.gz \
    usr/share/bash-completion/completions/safeexec usr/share/zsh/vendor-completions/_safeexec \
    usr/share/fish/vendor_completions.d/safeexec.fish usr/share/doc/safeexec/copyright \
    usr/share/doc/safeexec/changelog.Debian.gz usr/share/lintian/overrides/safeexec; do
    expect_deb_entry -rw-r--r-- root/root "$f"
done
if [ "$(dpkg-deb -f "$deb" Version)" = "$(awk -F'"' '/^\[workspace.package\]/{s=1} s && /^version/{print $2; exit}' Cargo.toml)-1" ]; then
    ok "deb: version from Cargo.toml"
else
    fail "deb: version $(dpkg-deb -f "$deb" Version) does not match Cargo.toml"
fi
if [ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" = /etc/safeexec/policy ]; then
    ok "deb: /etc/safeexec/policy is the conffile"
else
    fail "deb: conffiles is not exactly /etc/safeexec/policy"
fi

step "lintian"
lint=$(lintian --display-info --show-overrides "$deb" 2>&1) || true
echo "$lint"
if grep -q '^E:' <<<"$lint"; then
    fail "lintian reports errors"
else
    ok "lintian: no error"
fi
if grep -q '^O: safeexec: elevated-privileges 4754 root/root' <<<"$lint"; then
    ok "lintian: the setuid helper is overridden with a reason"
else
    fail "lintian: the elevated-privileges override was not used"
fi

# --- install, run, refuse, purge ---------------------------------------------------

user_in=sxci-in-$$
user_out=sxci-out-$$
cleanup() {
    local rc=$?
    for u in "$user_in" "$user_out"; do
        if getent passwd "$u" >/dev/null; then userdel "$u" || true; fi
        if getent group "$u" >/dev/null; then groupdel "$u" || true; fi
    done
    if dpkg-query -W -f='${db:Status-Status}' safeexec 2>/dev/null | grep -qv '^not-installed$'; then
        echo "ci-packages: cleanup: purging safeexec" >&2
        dpkg --purge safeexec >/dev/null || true
    fi
    exit "$rc"
}
trap cleanup EXIT

step "dpkg -i"
if dpkg-query -W -f='${db:Status-Status}' safeexec 2>/dev/null | grep -qv '^not-installed$'; then
    echo "safeexec was installed before this run: purging it first"
    dpkg --purge safeexec
fi
dpkg -i "$deb"
if getent group safeexec >/dev/null; then ok "group safeexec exists"; else fail "group safeexec was not created"; fi
actual=$(stat -c '%A %U %G' "$HELPER")
if [ "$actual" = "-rwsr-xr-- root safeexec" ]; then
    ok "installed helper: $actual"
else
    fail "installed helper is '$actual', expected '-rwsr-xr-- root safeexec'"
fi
override=$(dpkg-statoverride --list "$HELPER" || true)
if [ "$override" = "root safeexec 4754 $HELPER" ]; then
    ok "statoverride: $override"
else
    fail "statoverride is '$override', expected 'root safeexec 4754 $HELPER'"
fi
for page in /usr/share/man/man1/safeexec.1.gz /usr/share/man/man8/safeexec-helper.8.gz; do
    if [ ! -f "$page" ]; then
        fail "$page is not installed"
    elif ! command -v man >/dev/null; then
        echo "ci-packages: note: no man command to render $page"
    elif man -l "$page" >/dev/null 2>&1; then
        ok "$page renders"
    else
        fail "$page does not render"
    fi
done

useradd --no-create-home --shell /usr/sbin/nologin --groups safeexec "$user_in"
useradd --no-create-home --shell /usr/sbin/nologin "$user_out"
# as USER CMD...: runs CMD with USER's uid, primary group and supplementary groups.
as() {
    local user=$1
    shift
    (cd / && setpriv --reuid="$user" --regid="$user" --init-groups --reset-env -- "$@")
}

step "run as $user_in (in group safeexec)"
if [ "${SAFEEXEC_CI_SKIP_RUN:-}" = 1 ]; then
    echo "ci-packages: SKIPPED: the end-to-end run (SAFEEXEC_CI_SKIP_RUN=1)" >&2
else
    # stdout must be a pipe: a regular file would count against --fsize,
    # whose default is 0.
    errfile=$(mktemp)
    rc=0
    run_out=$(as "$user_in" /usr/bin/safeexec --exec /bin/echo hi 2>"$errfile") || rc=$?
    run_err=$(cat "$errfile")
    rm -f "$errfile"
    echo "exit status: $rc"
    echo "stdout: $run_out"
    echo "stderr (the report):"
    echo "$run_err"
    if [ "$rc" = 0 ] && [ "$run_out" = hi ] && grep -qx OK <<<"$run_err"; then
        ok "the member ran /bin/echo hi in the sandbox: 'hi' and an OK report"
    else
        fail "the member's run: expected exit 0, 'hi' and an OK report"
    fi
fi

step "run as $user_out (not in group safeexec)"
rc=0
refusal=$(as "$user_out" /usr/bin/safeexec --exec /bin/echo hi 2>&1) || rc=$?
echo "exit status: $rc"
echo "$refusal"
if [ "$rc" != 0 ] && ! grep -qx hi <<<"$refusal" && grep -qi 'permission denied' <<<"$refusal"; then
    ok "safeexec cannot start the helper for a non-member (permission denied, exit $rc)"
else
    fail "a non-member was not refused with 'permission denied' and a non-zero exit"
fi
# Through a shell: setpriv still holds root's capabilities when it calls
# execve (so CAP_DAC_OVERRIDE would let it run any executable file), while
# the shell runs with none, as a real login of that user would.
rc=0
# shellcheck disable=SC2016 # $0 is for the inner shell
direct=$(as "$user_out" /bin/sh -c 'exec "$0"' "$HELPER" 2>&1) || rc=$?
echo "$direct"
if [ "$rc" != 0 ] && grep -qi 'permission denied' <<<"$direct"; then
    ok "a non-member cannot execute the helper directly (exit $rc)"
else
    fail "a non-member could execute the helper directly"
fi

step "dpkg --purge"
# Every file of the package, and every directory of its own (one whose
# name says safeexec; /usr/bin and the like belong to others too).
mapfile -t paths < <(dpkg-deb -c "$deb" | awk '{
        path = substr($6, 2); sub(/\/$/, "", path)
        if (path == "") next
        if (substr($1, 1, 1) != "d" || path ~ /safeexec[^\/]*$/) print path
    }')
dpkg --purge safeexec
if dpkg-query -W -f='${db:Status-Status}' safeexec 2>/dev/null | grep -qv '^not-installed$'; then
    fail "dpkg still knows the package safeexec"
else
    ok "dpkg: safeexec is not installed"
fi
left=()
for p in "${paths[@]}"; do
    if [ -e "$p" ] || [ -L "$p" ]; then left+=("$p"); fi
done
if [ "${#left[@]}" = 0 ]; then
    ok "no file of the package is left (${#paths[@]} entries checked)"
else
    fail "left after purge: ${left[*]}"
fi
if dpkg-statoverride --list "$HELPER" >/dev/null 2>&1; then
    fail "the statoverride of $HELPER is left after purge"
else
    ok "no statoverride is left"
fi
# Step 5's run kept its network namespace (the helper's netpool): removal
# lets go of it.
if grep -q ' /var/lib/safeexec/netns/' /proc/self/mountinfo; then
    fail "a network namespace the helper kept is still mounted after purge"
else
    ok "no network namespace the helper kept is left mounted"
fi
echo "ci-packages: note: group safeexec is kept on purge on purpose (see packaging/debian/postrm)"

# --- the .rpm -------------------------------------------------------------------

step "rpm -qlvp $(basename "$rpm")"
listing=$(rpm -qlvp "$rpm")
echo "$listing"
expect_rpm_entry() { # mode owner group path
    if awk -v m="$1" -v o="$2" -v g="$3" -v p="$4" \
        '$1 == m && $3 == o && $4 == g && $NF == p { found = 1 } END { exit !found }' <<<"$listing"; then
        ok "rpm: $1 $2 $3 $4"
    else
        fail "rpm: expected $1 $2 $3 $4"
    fi
}
expect_rpm_entry -rwxr-xr-x root root /usr/bin/safeexec
expect_rpm_entry -rwsr-xr-- root safeexec "$HELPER"
expect_rpm_entry -rw-r--r-- root root /etc/safeexec/policy
config=$(rpm -qcp "$rpm")
echo "config files: $config"
if [ "$config" = /etc/safeexec/policy ]; then
    ok "rpm: the policy is the config file"
else
    fail "rpm -qcp gives '$config', expected /etc/safeexec/policy"
fi
flags=$(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" | awk '$2 == "/etc/safeexec/policy" {print $1}')
case "$flags" in
*c*n* | *n*c*) ok "rpm: the policy is %config(noreplace) (flags $flags)" ;;
*) fail "rpm: policy flags '$flags' lack config and noreplace" ;;
esac
postun=$(rpm -qp --qf '%{POSTUN}' "$rpm")
if grep -q 'umount -l' <<<"$postun"; then
    ok "rpm: %postun lets go of the kept network namespaces"
else
    fail "rpm: %postun does not let go of the kept network namespaces"
fi
pre=$(rpm -qp --qf '%{PREIN}' "$rpm")
if grep -q 'groupadd -r safeexec' <<<"$pre"; then
    ok "rpm: %pre creates the group"
else
    fail "rpm: %pre does not create the group"
fi

# --- verdict -----------------------------------------------------------------------

echo
if [ "$failures" = 0 ]; then
    echo "ci-packages: all package checks passed"
else
    echo "ci-packages: $failures check(s) FAILED" >&2
    exit 1
fi
