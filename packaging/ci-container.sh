#!/usr/bin/env bash
# CI check of the container mode, run as root by .ci/run (README,
# "Containers"). With no image registry:
#
#   1. builds the .deb (packaging/build-packages.sh deb) and a Debian 12
#      root file system (mmdebstrap --variant=minbase), imports it with
#      podman import and builds the worker image from it with
#      packaging/container/Containerfile;
#   2. in a container with exactly the documented capabilities, as the
#      worker (a member of group safeexec): a run is OK, a CPU limit and a
#      memory limit end their runs, a double-forked sleeper is not left
#      behind, and the JSON report says why it has no cgroup figures (a
#      privileged container with a cgroup namespace of its own has them);
#   3. runs packaging/container/worker.yaml with `podman kube play`;
#   4. takes each condition away in turn (no_new_privs, a nosuid mount,
#      each of the six capabilities, the sandbox ids unmapped in a user
#      namespace) and checks the one line that names it.
#
# Host quirks it handles (users meet them too): crun refuses a host with
# both cgroup versions, so runc; root without CAP_SYS_RESOURCE cannot raise
# podman's default rlimits, so explicit --ulimit; no iptables, so
# --network=none. It removes its images, containers and pod at the end.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

failures=0
step() { printf '\n==== ci-container: %s\n' "$*"; }
ok() { echo "ci-container: ok: $*"; }
fail() {
    echo "ci-container: FAIL: $*" >&2
    failures=$((failures + 1))
}
die() {
    echo "ci-container: FATAL: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (rootful podman)"
started=$(date +%s)

# Names of this script's own images, containers and pod; removed at the end.
tag=safeexec-ci-$$
base_image=localhost/$tag-base
image=localhost/$tag-worker
work=$(mktemp -d /var/tmp/safeexec-ci-container.XXXXXX)

cleanup() {
    local rc=$?
    podman --runtime runc kube down "$work/worker.yaml" >/dev/null 2>&1 || true
    podman rmi -f "$image" >/dev/null 2>&1 || true
    if [ -z "${SAFEEXEC_CI_BASE_IMAGE:-}" ]; then
        podman rmi -f "$base_image" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

# The capabilities the helper needs (helper/src/identity.rs, NEEDED).
CAPS=(SETUID SETGID SETPCAP KILL SYS_ADMIN NET_ADMIN)
caps_but() { # the list without $1, comma-separated
    local out=() c
    for c in "${CAPS[@]}"; do [ "$c" = "$1" ] || out+=("$c"); done
    local IFS=,
    echo "${out[*]}"
}
# podman run with the documented flags (README, "Containers").
# shellcheck disable=SC2054 # commas inside option values
RUN=(podman --runtime runc run --rm --network=none --pull=never
    --ulimit nofile=1024:4096 --ulimit nproc=4096:4096)
with_caps() { # CAPS-LIST ARGS...: a container with exactly those capabilities
    local caps=$1
    shift
    "${RUN[@]}" --cap-drop ALL --cap-add "$caps" "$@"
}

# --- tools ---------------------------------------------------------------------

step "tools"
missing=()
for tool in podman:podman runc:runc catatonit:catatonit mmdebstrap:mmdebstrap newuidmap:uidmap readelf:binutils; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
ok "$(podman --version), runc $(runc --version | awk 'NR == 1 {print $3}'), mmdebstrap $(mmdebstrap --version | awk '{print $2}')"

# --- the image -------------------------------------------------------------------

step "build the .deb"
packaging/build-packages.sh deb
shopt -s nullglob
debs=(target/packages/safeexec_*.deb)
shopt -u nullglob
[ "${#debs[@]}" = 1 ] || die "expected one .deb in target/packages, found ${#debs[@]}"
mkdir "$work/context"
cp "${debs[0]}" "$work/context/"

step "a Debian 12 root file system (mmdebstrap --variant=minbase) and its image"
t0=$(date +%s)
if [ -n "${SAFEEXEC_CI_BASE_IMAGE:-}" ]; then
    # For a second look on a developer's machine only: CI builds it anew.
    base_image=$SAFEEXEC_CI_BASE_IMAGE
    echo "ci-container: note: reusing the base image $base_image (SAFEEXEC_CI_BASE_IMAGE)"
else
    mmdebstrap --quiet --variant=minbase bookworm "$work/rootfs.tar" http://deb.debian.org/debian
    podman import --quiet "$work/rootfs.tar" "$base_image" >/dev/null
    rm -f "$work/rootfs.tar"
fi
ok "base image $base_image in $(($(date +%s) - t0)) s"

step "the worker image (packaging/container/Containerfile)"
podman --runtime runc build --quiet --pull=never --network=none \
    --ulimit nofile=1024:4096 --ulimit nproc=4096:4096 \
    --build-arg BASE="$base_image" -f packaging/container/Containerfile \
    -t "$image" "$work/context"
ok "image $image"

# --- runs with the documented capabilities ------------------------------------------------

all_caps=$(caps_but none)
expect() { # NAME EXPECTED-STATUS PATTERN COMMAND...: the output matches PATTERN
    local name=$1 want=$2 pattern=$3 out rc=0
    shift 3
    out=$("$@" 2>&1) || rc=$?
    echo "$out" | sed 's/^/    /'
    if [ "$rc" = "$want" ] && grep -Eq -- "$pattern" <<<"$out"; then
        ok "$name (exit $rc)"
    else
        fail "$name: exit $rc (expected $want), output not matching /$pattern/"
    fi
}

step "runs as the worker, capabilities $all_caps only"
# KILL 5, SETGID 6, SETUID 7, SETPCAP 8, NET_ADMIN 12, SYS_ADMIN 21.
CAPS_MASK=00000000002011e0
expect "the container's bounding set is the six" 0 "^CapBnd:	$CAPS_MASK\$" \
    with_caps "$all_caps" "$image" grep CapBnd /proc/self/status
expect "the worker is a member of group safeexec" 0 '\bsafeexec\b' \
    with_caps "$all_caps" "$image" id
expect "a run is OK" 0 '^hi$' \
    with_caps "$all_caps" "$image" safeexec --exec /bin/echo hi
expect "a run's report: OK" 0 '^OK$' \
    with_caps "$all_caps" "$image" safeexec --exec /bin/true
expect "a CPU limit ends a busy loop" 1 '^Time Limit Exceeded$' \
    with_caps "$all_caps" "$image" safeexec --cpu 0.5 --exec /bin/sh -c 'while :; do :; done'
# tail -n 1 keeps a line without newline whole: 200 MB of one line.
expect "a memory limit ends a memory hog" 1 '^Memory Limit Exceeded$' \
    with_caps "$all_caps" "$image" safeexec --nproc 3 --mem 1000000 --rss 32768 \
    --exec /bin/sh -c 'head -c 200000000 /dev/zero | tail -n 1 | wc -c'
# The container's read-only cgroup file systems: no figures, and why.
expect "the JSON report says why it has no cgroup figures" 0 \
    '"cgroup":null.*"cgroup_absent":"[^"]*read-only' \
    with_caps "$all_caps" "$image" safeexec --json --exec /bin/true
# Writable cgroups need a privileged container; in a cgroup namespace of
# its own, the run gets its cgroups there.
expect "a privileged container with its own cgroup namespace gives cgroup figures" 0 \
    '"cgroup":\{"cpu_ms":[0-9.]+,.*"cgroup_absent":null' \
    "${RUN[@]}" --privileged --cgroupns=private "$image" safeexec --json --exec /bin/true
# A daemon that double-forks out of its session, then the sandbox uids'
# processes listed through /proc, in the same container.
# shellcheck disable=SC2016 # for the container's shell
expect "nothing is left behind" 0 '^left: 0$' \
    with_caps "$all_caps" "$image" /bin/sh -c '
        safeexec --nproc 4 --exec /bin/sh -c "(setsid sleep 300 &) ; echo forked" 2>&1
        n=0
        for p in /proc/[0-9]*; do
            u=$(stat -c %u "$p" 2>/dev/null) || continue
            [ "$u" -ge 1879048192 ] && n=$((n + 1))
        done
        echo "left: $n"'
# Two workers sharing the node's uid state (as worker.yaml's hostPath):
# their runs get different uids, though each container starts afresh.
mkdir -m 0755 "$work/state"
uids=()
for worker in 1 2; do
    report=$(with_caps "$all_caps" -v "$work/state:/var/lib/safeexec" "$image" \
        safeexec --json --exec /bin/true 2>&1) || true
    uids+=("$(sed -n 's/.*"uid":\([0-9]*\).*/\1/p' <<<"$report")")
done
if [ -n "${uids[0]}" ] && [ -n "${uids[1]}" ] && [ "${uids[0]}" != "${uids[1]}" ]; then
    ok "two workers sharing /var/lib/safeexec hand out different uids (${uids[*]})"
else
    fail "two workers sharing /var/lib/safeexec: uids '${uids[*]}'"
fi
expect "--chroot_dir needs SYS_CHROOT, and says so" 2 'lacks CAP_SYS_CHROOT \(for --chroot_dir and --root minimal\)' \
    with_caps "$all_caps" "$image" safeexec --chroot_dir /home/worker --exec /bin/true
expect "--chroot_dir works with SYS_CHROOT" 1 'Command exited with non-zero status \(127\)' \
    with_caps "$all_caps,SYS_CHROOT" "$image" safeexec --chroot_dir /home/worker --exec /bin/true

# --- the Pod -------------------------------------------------------------------------------------

step "the Deployment of packaging/container/worker.yaml, through podman kube play"
mkdir -m 0755 "$work/pod-state"
sed -e "s|localhost/safeexec-worker:latest|$image|" -e "s|name: safeexec-worker$|name: $tag|" \
    -e "s|path: /var/lib/safeexec$|path: $work/pod-state|" \
    packaging/container/worker.yaml >"$work/worker.yaml"
# kube play takes no --ulimit: the limits go in podman's configuration
# (soft equal to hard: podman 4.3's kube play swaps the two).
cat >"$work/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
EOF
CONTAINERS_CONF=$work/containers.conf podman --runtime runc kube play --network none "$work/worker.yaml"
pod_ok=0
for _ in $(seq 1 60); do
    logs=$(podman logs "$tag-pod-0-worker" 2>&1 || true)
    if grep -q '^OK$' <<<"$logs"; then
        pod_ok=1
        break
    fi
    sleep 1
done
echo "$logs" | sed 's/^/    /'
if [ "$pod_ok" = 1 ] && grep -q '^safeexec worker ready$' <<<"$logs"; then
    ok "the Pod's worker ran a sandboxed program: OK"
else
    fail "the Pod's worker did not report OK"
fi
if [ -f "$work/pod-state/uids" ]; then
    ok "the Pod's runs took their uids from the node's state (hostPath)"
else
    fail "the Pod's worker did not use the hostPath /var/lib/safeexec"
fi
bounding=$(podman exec "$tag-pod-0-worker" grep CapBnd /proc/self/status 2>&1 || true)
if [ "$bounding" = "CapBnd:	$CAPS_MASK" ]; then
    ok "the Pod's worker has exactly the six capabilities ($bounding)"
else
    fail "the Pod's worker: '$bounding', expected CapBnd $CAPS_MASK"
fi
podman --runtime runc kube down "$work/worker.yaml" >/dev/null

# --- each missing condition, named ------------------------------------------------------------------

step "each missing condition gives its one line"
expect "no-new-privileges" 2 'no_new_privs is set' \
    with_caps "$all_caps" --security-opt no-new-privileges "$image" safeexec --exec /bin/true
for cap in "${CAPS[@]}"; do
    expect "without CAP_$cap" 2 "lacks CAP_$cap " \
        with_caps "$(caps_but "$cap")" "$image" safeexec --exec /bin/true
done
# The helper from the image, put on a nosuid mount with its owner and mode.
mkdir "$work/nosuid"
with_caps "$all_caps,CHOWN,FOWNER,FSETID" --user root -v "$work/nosuid:/out" "$image" \
    cp -a /usr/libexec/safeexec/safeexec-helper /out/
expect "the helper on a nosuid mount" 2 "mounted nosuid" \
    with_caps "$all_caps" -v "$work/nosuid:/usr/libexec/safeexec:nosuid" "$image" \
    safeexec --exec /bin/true
# A user namespace of 65536 ids: the policy's sandbox uids are not in it.
expect "sandbox ids unmapped in a user namespace" 2 \
    'sandbox uids 1879048192-1883242495 .* not all mapped in this user namespace, which maps 0-65535' \
    with_caps "$all_caps" --uidmap 0:200000:65536 --gidmap 0:200000:65536 "$image" \
    safeexec --exec /bin/true

# --- verdict ------------------------------------------------------------------------------------------

echo
echo "ci-container: took $(($(date +%s) - started)) s"
if [ "$failures" = 0 ]; then
    echo "ci-container: all container checks passed"
else
    echo "ci-container: $failures check(s) FAILED" >&2
    exit 1
fi
