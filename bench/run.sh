#!/bin/bash
# The benchmark of the README: installs safeexec into the test prefix
# (DEFAULT_PREFIX of tests/src/lib.rs, or $SAFEEXEC_TEST_PREFIX) through the
# test harness, compiles bench/fixtures/*.c, drops to the user safeexec-test and
# prints one table of figures beside bubblewrap's (and isolate's, if it is on
# PATH), see bench/README.md. A missed target is marked MISS but does not
# fail the run. For a few seconds it starts 2,000 idle processes of the user
# safeexec-outsider; every one is killed and reaped before it ends, Ctrl-C
# included.
#
# Usage: sudo bash bench/run.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: error: the benchmark installs a setuid helper and must run as root (sudo bash bench/run.sh)" >&2
    exit 1
fi

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
        PATH=${CARGO_HOME:-$HOME/.cargo}/bin:$PATH
    elif [ -x /root/.cargo/bin/cargo ]; then
        PATH=/root/.cargo/bin:$PATH
    else
        echo "run.sh: error: cargo not found in PATH (try: sudo env \"PATH=\$PATH\" bash bench/run.sh)" >&2
        exit 1
    fi
    export PATH
fi
command -v gcc >/dev/null 2>&1 || {
    echo "run.sh: error: gcc not found (it compiles bench/fixtures/*.c)" >&2
    exit 1
}

# The peer safeexec is compared with, if it can be had (isolate is not
# packaged for Debian: it is measured only when already on PATH). The
# header names the commit, the build and the peers' versions.
if ! command -v bwrap >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null 2>&1 ||
        echo "run.sh: note: bubblewrap could not be installed; its comparison is left out" >&2
fi

export SAFEEXEC_REQUIRE_ROOT_TESTS=1
status=0
cargo bench --locked -p safeexec-tests --bench safeexec || status=$?
# The network namespaces the benchmark's runs kept (the helper's netpool,
# on its own tmpfs in the installation's state directory) are let go.
prefix=${SAFEEXEC_TEST_PREFIX:-/var/lib/safeexec-test}
for _ in 1 2 3 4; do umount -l "$prefix/var/lib/safeexec/netns" 2>/dev/null || break; done
exit "$status"
