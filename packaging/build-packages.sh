#!/usr/bin/env bash
# Builds the Debian and RPM packages of safeexec into target/packages/.
#
#   packaging/build-packages.sh [all|deb|rpm]      (default: all)
#
# Needs cargo, dpkg-deb and readelf (binutils) for the .deb, rpmbuild
# (Debian's package "rpm") for the .rpm.
#
# The .deb is assembled by this script from a plain directory tree with
# dpkg-deb, not with cargo-deb nor debhelper: that needs no large build
# dependency, keeps every mode and owner in view in one place (the helper is
# setuid root), and makes the output depend only on the sources. The .rpm
# packages the same prebuilt files with a spec (packaging/rpm/safeexec.spec);
# nothing is compiled inside rpmbuild.
#
# Reproducible: the same commit gives the same package bytes. Time stamps
# come from SOURCE_DATE_EPOCH (the last commit's time unless set), file
# lists are sorted, mtimes fixed, owners root, gzip without names or times,
# and build paths are remapped out of the binaries.
set -euo pipefail

die() {
    echo "build-packages: error: $*" >&2
    exit 1
}
say() { echo "build-packages: $*"; }

what=${1:-all}
case "$what" in
all | deb | rpm) ;;
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
*) die "unknown argument '$what' (expected all, deb or rpm)" ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found; $2"
}
need cargo "install the Rust toolchain"
need gzip "install gzip"
if [ "$what" != rpm ]; then
    need dpkg-deb "install dpkg"
    need readelf "apt-get install binutils"
fi
if [ "$what" != deb ]; then
    need rpmbuild "apt-get install rpm"
fi

umask 022
export LC_ALL=C TZ=UTC

# --- inputs ---------------------------------------------------------------

# workspace.package.version and .repository from the root Cargo.toml.
workspace_key() {
    awk -v key="$1" '
        /^\[/ { in_section = ($0 == "[workspace.package]") ; next }
        in_section && $1 == key {
            sub(/^[^=]*=[ \t]*"/, ""); sub(/".*$/, ""); print; exit
        }' Cargo.toml
}
version=$(workspace_key version)
[ -n "$version" ] || die "no version in [workspace.package] of Cargo.toml"
homepage=$(workspace_key repository)
revision=1
maintainer="safeexec maintainers <safeexec@example.invalid>"

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null) ||
        die "not a git checkout: set SOURCE_DATE_EPOCH"
fi
case "$SOURCE_DATE_EPOCH" in
'' | *[!0-9]*) die "SOURCE_DATE_EPOCH '$SOURCE_DATE_EPOCH' is not a number" ;;
esac
export SOURCE_DATE_EPOCH

out=$root/target/packages
work=$root/target/packages-build
stage=$work/stage
mkdir -p "$out" "$work"

say "safeexec $version, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH ($(date -u -d "@$SOURCE_DATE_EPOCH" +%F))"

# --- build ----------------------------------------------------------------

# A target directory of its own, so that this never waits for the lock of
# another build; the policy path is compiled into the helper.
export CARGO_TARGET_DIR=$work
export SAFEEXEC_POLICY_PATH=/etc/safeexec/policy
# The packaged frontend runs the helper at its packaged path, never at one
# that happened to be in this build's environment (compiled in: no lookup
# of its own executable in /proc on every run).
export SAFEEXEC_HELPER_PATH=/usr/libexec/safeexec/safeexec-helper
# The checkout and cargo's home differ between machines: keep them out of
# the binaries (panic locations), so that they are reproducible.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }--remap-path-prefix=$root=/build/safeexec --remap-path-prefix=$cargo_home=/cargo"

say "building the binaries (release)"
# Static binaries: the setuid helper runs no dynamic loader; against
# musl, as install.sh says why.
triple=$(uname -m)-unknown-linux-musl
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$triple"; then
    timeout 300 rustup target add "$triple" </dev/null || true
fi
# The packages are always the musl build: what they hold must not depend
# on the build machine's toolchain.
if ! [ -d "$(rustc --print sysroot)/lib/rustlib/$triple/lib" ]; then
    die "no Rust target $triple (rustup target add $triple)"
fi
say "target $triple"
RUSTFLAGS="$RUSTFLAGS -C target-feature=+crt-static" \
    cargo build --release --locked --target "$triple" -p safeexec -p safeexec-helper
say "generating the man page and the completions"
rm -rf "$work/generated"
cargo run --quiet --locked -p xtask -- gen "$work/generated" >/dev/null

# --- stage the files both packages share -----------------------------------

rm -rf "$stage"
mkdir -p "$stage"
install -m 0755 "$work/$triple/release/safeexec" "$stage/safeexec"
install -m 0755 "$work/$triple/release/safeexec-helper" "$stage/safeexec-helper"
install -m 0644 packaging/policy "$stage/policy"
install -m 0644 packaging/systemd/safeexec.service "$stage/safeexec.service"
install -m 0644 LICENSE "$stage/LICENSE"
for f in safeexec.bash _safeexec safeexec.fish; do
    install -m 0644 "$work/generated/$f" "$stage/$f"
done
# gzip -n stores neither the name nor the time: the same input, the same bytes.
gzip -9n <"$work/generated/safeexec.1" >"$stage/safeexec.1.gz"
gzip -9n <docs/safeexec-helper.8 >"$stage/safeexec-helper.8.gz"
with_readme=0
if [ -f README.md ]; then
    install -m 0644 README.md "$stage/README.md"
    with_readme=1
fi

# Sets every mtime under $1 to SOURCE_DATE_EPOCH.
clamp_mtimes() {
    find "$1" -depth -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
}

# --- .deb -----------------------------------------------------------------

build_deb() {
    local arch deb_root debian depends size deb
    arch=$(dpkg --print-architecture)
    deb_root=$work/deb/root
    debian=$deb_root/DEBIAN
    rm -rf "$work/deb"
    mkdir -p "$debian"

    # name mode source (relative to $stage unless absolute)
    local -a files=(
        "usr/bin/safeexec 0755 safeexec"
        # Shipped setuid root but executable by group root only; postinst
        # then sets root:safeexec 4754 with dpkg-statoverride, once the
        # group exists. See debian/lintian-overrides.
        "usr/libexec/safeexec/safeexec-helper 4754 safeexec-helper"
        "etc/safeexec/policy 0644 policy"
        "lib/systemd/system/safeexec.service 0644 safeexec.service"
        "usr/share/man/man1/safeexec.1.gz 0644 safeexec.1.gz"
        "usr/share/man/man8/safeexec-helper.8.gz 0644 safeexec-helper.8.gz"
        "usr/share/bash-completion/completions/safeexec 0644 safeexec.bash"
        "usr/share/zsh/vendor-completions/_safeexec 0644 _safeexec"
        "usr/share/fish/vendor_completions.d/safeexec.fish 0644 safeexec.fish"
        "usr/share/lintian/overrides/safeexec 0644 $root/packaging/debian/lintian-overrides"
    )
    if [ "$with_readme" = 1 ]; then
        files+=("usr/share/doc/safeexec/README.md 0644 README.md")
    fi
    local entry name mode src
    for entry in "${files[@]}"; do
        read -r name mode src <<<"$entry"
        case "$src" in /*) ;; *) src=$stage/$src ;; esac
        install -D -m "$mode" "$src" "$deb_root/$name"
    done

    mkdir -p "$deb_root/usr/share/doc/safeexec"
    # copyright, machine-readable; the AGPL is not among
    # /usr/share/common-licenses, so its whole text goes in.
    {
        echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
        echo "Upstream-Name: safeexec"
        echo "Source: $homepage"
        echo
        echo "Files: *"
        echo "Copyright: the safeexec contributors"
        echo "License: AGPL-3.0-or-later"
        sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /' LICENSE
    } >"$deb_root/usr/share/doc/safeexec/copyright"
    chmod 0644 "$deb_root/usr/share/doc/safeexec/copyright"

    {
        echo "safeexec ($version-$revision) unstable; urgency=medium"
        echo
        echo "  * Release $version, built from the safeexec sources."
        echo
        echo " -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
    } | gzip -9n >"$deb_root/usr/share/doc/safeexec/changelog.Debian.gz"
    chmod 0644 "$deb_root/usr/share/doc/safeexec/changelog.Debian.gz"

    # Both binaries are static (no shared-library dependency): check it,
    # since a dynamic one would need a Depends on libc6.
    for bin in "$deb_root/usr/bin/safeexec" "$deb_root/usr/libexec/safeexec/safeexec-helper"; do
        if readelf -d "$bin" 2>/dev/null | grep -q NEEDED; then
            die "$bin is dynamically linked; the packages expect static binaries"
        fi
    done
    # groupadd, in postinst.
    depends="passwd"

    # Installed-Size as dpkg-gencontrol counts it: KiB of each file, rounded
    # up, plus one for every other entry.
    size=$(find "$deb_root" -mindepth 1 -path "$debian" -prune -o -printf '%y %s\n' |
        awk '$1 == "f" { t += int(($2 + 1023) / 1024); next } { t += 1 } END { print t }')

    sed -e "s|@VERSION@|$version-$revision|" -e "s|@ARCH@|$arch|" \
        -e "s|@MAINTAINER@|$maintainer|" -e "s|@INSTALLED_SIZE@|$size|" \
        -e "s|@DEPENDS@|$depends|" -e "s|@HOMEPAGE@|$homepage|" \
        packaging/debian/control.in >"$debian/control"
    echo /etc/safeexec/policy >"$debian/conffiles"
    install -m 0755 packaging/debian/postinst "$debian/postinst"
    install -m 0755 packaging/debian/postrm "$debian/postrm"
    # Checksums of everything but the conffile (dpkg tracks that itself).
    (cd "$deb_root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -print |
        sed 's|^\./||' | sort | xargs -d '\n' md5sum) >"$debian/md5sums"
    chmod 0644 "$debian/control" "$debian/conffiles" "$debian/md5sums"

    find "$deb_root" -type d -exec chmod 0755 {} +
    clamp_mtimes "$deb_root"

    deb=$out/safeexec_${version}-${revision}_${arch}.deb
    rm -f "$deb"
    dpkg-deb --root-owner-group -Zxz --build "$deb_root" "$deb" >/dev/null
    say "wrote ${deb#"$root"/}"
}

# --- .rpm -----------------------------------------------------------------

build_rpm() {
    local top rpm built
    top=$work/rpm
    rm -rf "$top"
    mkdir -p "$top"/{BUILD,BUILDROOT,RPMS,SOURCES,SPECS,SRPMS}
    clamp_mtimes "$stage"
    # rpmbuild's own macros file is left out (--macros would replace the
    # system's); everything is passed as --define.
    rpmbuild -bb --quiet \
        --define "_topdir $top" \
        --define "pkg_version $version" \
        --define "stagedir $stage" \
        --define "with_readme $with_readme" \
        --define "_rpmfilename %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
        packaging/rpm/safeexec.spec
    built=$(find "$top/RPMS" -name '*.rpm' | sort)
    [ "$(printf '%s\n' "$built" | grep -c .)" = 1 ] || die "rpmbuild made not exactly one package: $built"
    rpm=$out/$(basename "$built")
    mv -f "$built" "$rpm"
    say "wrote ${rpm#"$root"/}"
}

if [ "$what" != rpm ]; then build_deb; fi
if [ "$what" != deb ]; then build_rpm; fi
