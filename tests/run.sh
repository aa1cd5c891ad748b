#!/bin/bash
# The test command of the README: runs every test of the workspace,
# including the end-to-end tests that install safeexec into a scratch prefix
# (/var/lib/safeexec-test, or $SAFEEXEC_TEST_PREFIX), create the users
# safeexec-test and safeexec-outsider, and run the setuid helper as them.
#
# Usage: sudo bash tests/run.sh [extra cargo test arguments]
#
# As root, a test that needs root fails instead of being skipped
# (SAFEEXEC_REQUIRE_ROOT_TESTS=1). Not as root, those tests print
# "SKIPPED (needs root): NAME" and pass; the rest still runs.
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

if [ "$(id -u)" -eq 0 ]; then
    export SAFEEXEC_REQUIRE_ROOT_TESTS=1
else
    echo "run.sh: warning: not root: the end-to-end tests will be SKIPPED (run: sudo bash tests/run.sh)" >&2
fi

# One test binary after another (cargo test's way): some tests rewrite the
# test installation's policy. Within a binary, tests run in parallel.
cargo test --workspace --locked "$@"
