#!/usr/bin/env python3
"""Compares commands in one interleaved loop: each round runs every command
once, in a shuffled order, and the figures are medians over the rounds of
the wall time (spawn to reaped) and of the CPU time (rusage of the whole
process tree), and for each command after the first, the median of its
per-round differences from the first with a 90 % bootstrap interval. The
script is a subreaper: a process that outlives the command (safeexec's
helper finishing its clean-up after the report) is reaped after the wall
time is taken, and its CPU time is counted with the command's. Made
to compare two builds of safeexec (or a build and bubblewrap) on a noisy
machine, where a difference of two separate medians is not to be trusted.
Install the builds compared at the same moment (a control too), or drop
their binaries' pages from the page cache first: freshly written copies of
safeexec's binaries start faster than the same files some minutes later
(bench/README, "The binaries' pages").

Usage, as the user who runs safeexec (the commands are split on spaces):
  N=1000 python3 bench/compare.py "old=/a/bin/safeexec --exec /bin/true" \\
      "new=/b/bin/safeexec --exec /bin/true" "bwrap=/usr/bin/bwrap --ro-bind / / \\
      --unshare-all --die-with-parent /bin/true"
"""
import ctypes
import os
import random
import resource
import statistics
import sys
import time


def main():
    rounds = int(os.environ.get("N", "400"))
    cmds = dict(a.partition("=")[::2] for a in sys.argv[1:])
    if len(cmds) < 2:
        sys.exit(__doc__)
    names = list(cmds)
    wall = {k: [] for k in names}
    cpu = {k: [] for k in names}
    # PR_SET_CHILD_SUBREAPER: orphans of the commands come to us.
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    null = os.open("/dev/null", os.O_RDWR)
    actions = [(os.POSIX_SPAWN_DUP2, null, fd) for fd in (0, 1, 2)]
    for i in range(rounds + 5):
        for k in random.sample(names, len(names)):
            argv = cmds[k].split()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            pid = os.posix_spawn(argv[0], argv, {"PATH": "/usr/bin:/bin"}, file_actions=actions)
            _, status, _ = os.wait4(pid, 0)
            took = (time.perf_counter() - start) * 1000
            if status != 0:
                sys.exit(f"compare.py: error: {k} failed (status {status})")
            reap_orphans()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if i >= 5:  # the first rounds warm the caches
                wall[k].append(took)
                used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                cpu[k].append(used * 1000)
    base = names[0]
    for k in names:
        line = f"{k:10} wall {statistics.median(wall[k]):7.3f} ms  cpu {statistics.median(cpu[k]):7.3f} ms"
        if k != base:
            dw = [a - b for a, b in zip(wall[k], wall[base])]
            dc = [a - b for a, b in zip(cpu[k], cpu[base])]
            boot = sorted(statistics.median(random.choices(dw, k=len(dw))) for _ in range(300))
            line += (f"   vs {base}: wall {statistics.median(dw):+.3f} "
                     f"[{boot[15]:+.3f}, {boot[284]:+.3f}]  cpu {statistics.median(dc):+.3f}")
        print(line)


def reap_orphans():
    """Waits for every process that came to us when its parent ended."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


main()
