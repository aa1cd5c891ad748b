#!/bin/bash
# The test command of the README: runs every test of the workspace,
# including the end-to-end tests that install safeexec into a scratch prefix
# (/var/lib/safeexec-test, or $SAFEEXEC_TEST_PREFIX), create the users
# safeexec-test and safeexec-outsider, and run the setuid helper as them.
#
# Usage: sudo bash tests/run.sh [cargo test arguments] [-- test arguments]
#
# The end-to-end tests need root: each is marked
# #[ignore = "needs root: sudo bash tests/run.sh"], so that a plain
# `cargo test` reports them as ignored. As root, this script runs them too
# (--include-ignored, given to every test binary), and one that cannot set
# up fails instead of being skipped (SAFEEXEC_REQUIRE_ROOT_TESTS=1). Not as
# root, it runs the other tests and says that the root ones did not run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
        PATH=${CARGO_HOME:-$HOME/.cargo}/bin:$PATH
    elif [ -x /root/.cargo/bin/cargo ]; then
        PATH=/root/.cargo/bin:$PATH
    else
        echo "run.sh: error: cargo not found in PATH (under sudo, try: sudo env \"PATH=\$PATH\" bash tests/run.sh)" >&2
        exit 1
    fi
    export PATH
fi

# Arguments before a `--` are cargo's, after it the test binaries'.
cargo_args=()
test_args=()
while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then
        shift
        test_args=("$@")
        break
    fi
    cargo_args+=("$1")
    shift
done

if [ "$(id -u)" -eq 0 ]; then
    export SAFEEXEC_REQUIRE_ROOT_TESTS=1
    test_args=(--include-ignored "${test_args[@]}")
else
    echo "run.sh: warning: not root: the end-to-end tests will not run (run: sudo bash tests/run.sh)" >&2
fi

# One test binary after another (cargo test's way): some tests rewrite the
# test installation's policy. Within a binary, tests run in parallel.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked "${cargo_args[@]}" -- "${test_args[@]}" 2>&1 | tee "$log" || status=$?

if [ "$(id -u)" -eq 0 ]; then
    # The network namespaces the test installation's helper kept between
    # runs (`netpool`: mounted on its own tmpfs in the state directory) are
    # let go, the tmpfs with them.
    prefix=${SAFEEXEC_TEST_PREFIX:-/var/lib/safeexec-test}
    for _ in 1 2 3 4; do umount -l "$prefix/var/lib/safeexec/netns" 2>/dev/null || break; done
fi

if [ "$(id -u)" -ne 0 ]; then
    ignored=$(sed -n 's/^test result: .* \([0-9][0-9]*\) ignored;.*/\1/p' "$log" | awk '{n += $1} END {print n + 0}')
    echo "run.sh: NOT RUN: $ignored root-only tests (reported as ignored above); run them with: sudo bash tests/run.sh" >&2
fi
exit "$status"
