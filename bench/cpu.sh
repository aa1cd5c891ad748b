#!/bin/bash
# Where the machine's CPU goes per run, against the floor of safeexec's
# shape: a static frontend that spawns a setuid helper, which makes new pid,
# mount, IPC and UTS namespaces, forks a child into them that drops to an
# unprivileged user and execs /bin/true (bench/floor, built here with gcc
# -static and removed at the end). Like a safeexec run that takes a kept
# network namespace, the floor makes none (it stays in the host's). Prints, as the benchmark's user, the
# runs per second and the machine's CPU per run of bare exec, the floor,
# safeexec and bubblewrap with 1 and 2 concurrent callers (bench/cpu.py).
# Then, where the machine mounts a cgroup v2 hierarchy, bench/floor/join.c
# shows what it costs a new process to be in a v2 cgroup after an idle
# second: moved there by a write to cgroup.procs, or born there (clone3
# with CLONE_INTO_CGROUP, as safeexec's target is), against a plain fork.
# With --policies it then measures what each containment feature costs:
# safeexec from two callers under the packaged policy and under variants
# of it (no cgroups, no kept network namespaces, the host's network); the
# installation's policy file is put back as it was at the end. With
# --roles it then samples the whole machine with `perf record` while two
# callers run safeexec, and splits the CPU per run between the parts of a
# run (frontend, supervisor, network thread, init, target), the caller and
# the kernel's threads (apt-get install linux-perf).
#
# Usage: sudo bash bench/cpu.sh [--secs S] [--rounds N] [--policies] [--roles]
# It needs the installation of bench/run.sh (the test prefix) first.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs=3 rounds=3 roles=0 policies=0
while [ $# -gt 0 ]; do
    case $1 in
    --secs) secs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --roles) roles=1; shift ;;
    --policies) policies=1; shift ;;
    *) echo "cpu.sh: error: unknown option $1" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" -ne 0 ]; then
    echo "cpu.sh: error: the floor's helper is installed setuid root (sudo bash bench/cpu.sh)" >&2
    exit 1
fi
prefix=${SAFEEXEC_TEST_PREFIX:-/var/lib/safeexec-test}
user=safeexec-test
[ -x "$prefix/bin/safeexec" ] || {
    echo "cpu.sh: error: no installation in $prefix (run bench/run.sh first)" >&2
    exit 1
}
command -v gcc >/dev/null 2>&1 || { echo "cpu.sh: error: gcc not found" >&2; exit 1; }
if [ "$roles" = 1 ] && ! command -v perf >/dev/null 2>&1; then
    echo "cpu.sh: error: --roles needs perf (apt-get install linux-perf)" >&2
    exit 1
fi

floor=$prefix/floor
scratch=$(mktemp -d)
trap 'rm -rf "$floor" "$scratch"' EXIT
rm -rf "$floor"
mkdir -m 755 "$floor"
gcc -O2 -static -o "$scratch/frontend" bench/floor/frontend.c
gcc -O2 -static -o "$scratch/helper" bench/floor/helper.c
gcc -O2 -o "$scratch/join" bench/floor/join.c
install -m 755 "$scratch/frontend" "$floor/frontend"
install -m 4754 -o root -g "$user" "$scratch/helper" "$floor/helper"
cp bench/cpu.py "$scratch/cpu.py"
chmod 755 "$scratch"
chmod 644 "$scratch/cpu.py"

as_user() {
    (cd / && setpriv --reuid "$user" --regid "$user" --init-groups env -i PATH=/usr/bin:/bin "$@")
}
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "the floor: glibc, static (each of its two execs costs some 0.2 ms more than a static musl one would here); no network namespace"
as_user python3 "$scratch/cpu.py" loop "$prefix" "$secs" "$rounds" 1,2

# The first cgroup v2 mount (a v2 host's /sys/fs/cgroup, a hybrid one's
# unified); the probe's directory is made in its root and removed.
cgroup2=$(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } break } }' /proc/self/mountinfo)
if [ -n "$cgroup2" ]; then
    echo
    echo "a new process in a cgroup v2 directory, one idle second before each ($cgroup2):"
    "$scratch/join" "$cgroup2" 3
fi

if [ "$policies" = 1 ]; then
    python3 "$scratch/cpu.py" policies "$prefix" "$user" "$secs" "$rounds"
fi

if [ "$roles" = 1 ]; then
    frequency=2000
    echo
    echo "where safeexec's runs spend the machine's CPU, 2 callers, 5 s (perf record -a, $frequency samples/s per CPU):"
    perf record -q -a -g -F "$frequency" -e cpu-clock -e sched:sched_process_fork -o "$scratch/perf.data" -- \
        setpriv --reuid "$user" --regid "$user" --init-groups env -i PATH=/usr/bin:/bin \
        python3 "$scratch/cpu.py" drive 5 2 "$prefix/bin/safeexec" --exec /bin/true 2>/dev/null |
        sed 's/^/under perf: /'
    perf script -i "$scratch/perf.data" -F comm,tid,event,trace,ip,sym,dso 2>/dev/null |
        python3 bench/cpu.py roles 5 "$(nproc)" "$frequency"
fi
