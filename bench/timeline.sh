#!/bin/bash
# Where the start-up of one run goes, step by step: traces one
# `safeexec ARGS` (default: --exec /bin/true) of the benchmark's user with
# the kernel's own event tracer (a private tracefs instance, following only
# that process and its children), then prints every process's exec, fork and
# exit and every system call that took longer than a threshold, with times
# from the frontend's exec. The tracer costs a few microseconds per event,
# so totals read a little high; the order and the large steps are what it is
# for. Runs RUNS times (default 20) and prints the median run's timeline
# and, for each step, the median over the runs.
#
# Usage: sudo bash bench/timeline.sh [--runs N] [--over US] [--no-syscalls] [--keep] [-- SAFEEXEC-ARGS...]
# --no-syscalls traces only the scheduler's events (far less overhead): the
# milestones, each process's time on a CPU and the time when no process
# of the run was on one. --keep leaves the raw traces (their folder is named).
# SAFEEXEC_FRONTEND=PATH traces another build of the frontend.
# It needs the installation of bench/run.sh (the test prefix) first.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=20 over=40 syscalls=1 keep=0
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=$2; shift 2 ;;
    --over) over=$2; shift 2 ;;
    --no-syscalls) syscalls=0; shift ;;
    --keep) keep=1; shift ;;
    --) shift; break ;;
    *) echo "timeline.sh: error: unknown option $1" >&2; exit 2 ;;
    esac
done
[ $# -gt 0 ] || set -- --exec /bin/true

if [ "$(id -u)" -ne 0 ]; then
    echo "timeline.sh: error: the kernel's tracer needs root (sudo bash bench/timeline.sh)" >&2
    exit 1
fi
prefix=${SAFEEXEC_TEST_PREFIX:-/var/lib/safeexec-test}
frontend=${SAFEEXEC_FRONTEND:-$prefix/bin/safeexec}
user=safeexec-test
[ -x "$frontend" ] || {
    echo "timeline.sh: error: no installation in $prefix (run bench/run.sh first)" >&2
    exit 1
}
tracefs=/sys/kernel/tracing
[ -e $tracefs/instances ] || mount -t tracefs nodev $tracefs
inst=$tracefs/instances/safeexec-timeline-$$
mkdir "$inst"
trap 'echo 0 > "$inst/tracing_on"; rmdir "$inst"' EXIT
echo 8192 > "$inst/buffer_size_kb"
echo 0 > "$inst/tracing_on"
echo mono > "$inst/trace_clock"
echo 1 > "$inst/options/event-fork"
events="sched/sched_process_fork sched/sched_process_exec sched/sched_process_exit"
events="$events sched/sched_switch sched/sched_wakeup sched/sched_wakeup_new exceptions/page_fault_user"
[ "$syscalls" = 0 ] || events="$events raw_syscalls/sys_enter raw_syscalls/sys_exit"
for e in $events; do
    echo 1 > "$inst/events/$e/enable"
done

out=$(mktemp -d)
for i in $(seq "$runs"); do
    echo > "$inst/trace"
    # The shell puts its own pid in the filter, turns tracing on and becomes
    # the user's frontend; the children follow (event-fork).
    sh -c 'echo $$ > "$1/set_event_pid"; echo 1 > "$1/tracing_on"; u=$2; shift 2;
           exec setpriv --reuid "$u" --regid "$u" --init-groups "$@"' \
        timeline "$inst" "$user" "$frontend" "$@" >/dev/null 2>&1 || true
    echo 0 > "$inst/tracing_on"
    cp "$inst/trace" "$out/$i"
done
python3 bench/timeline.py --over "$over" "$out"/*
if [ "$keep" = 1 ]; then echo "timeline.sh: the traces are in $out" >&2; else rm -r "$out"; fi
