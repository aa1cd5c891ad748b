#!/usr/bin/env python3
"""Where the machine's CPU goes per run (bench/cpu.sh).

loop PREFIX SECS ROUNDS CALLERS
    As the benchmark's user: completed runs per second and the machine's
    busy CPU time per run (from /proc/stat) of bare exec, the floor of
    safeexec's shape (bench/floor), safeexec and bubblewrap, CALLERS
    (comma-separated counts) concurrent callers each, every command SECS
    seconds per round, the order reversed every other round; prints the
    medians over ROUNDS rounds and the ratios.
drive SECS CALLERS COMMAND...
    Runs COMMAND back to back from CALLERS threads for SECS seconds (the
    load `perf record` samples) and prints its runs per second and CPU.
policies PREFIX USER SECS ROUNDS
    As root: what each containment feature costs. Runs safeexec from two
    callers as USER (`drive`) under the installation's packaged policy and
    under variants of it, each SECS seconds per round, the order reversed
    every other round, and prints the medians over ROUNDS rounds and each
    variant's difference from the packaged policy. The policy file is put
    back as it was at the end, whatever happens.
roles SECONDS CPUS FREQUENCY
    Reads `perf script -F comm,tid,event,trace,ip,sym,dso` of such a load on
    stdin and prints the CPU time per run of each part of a safeexec run
    (the frontend, the helper's supervisor, its network thread, init, the
    target before its exec and its program), of the caller and of the
    kernel's own threads, with the kernel's biggest entries in each.
"""
import collections
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time


def busy_ticks():
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    return sum(values) - values[3] - values[4]  # all but idle and iowait


def rate(command, callers, secs):
    """Runs per second and the machine's busy milliseconds per run."""
    stop = time.monotonic() + secs
    counts = [0] * callers
    failed = [0]

    def caller(i):
        while time.monotonic() < stop:
            done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            counts[i] += 1
            failed[0] += done.returncode != 0

    ticks, start = busy_ticks(), time.monotonic()
    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed, runs = time.monotonic() - start, sum(counts)
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    return runs / elapsed, (busy_ticks() - ticks) * tick_ms / max(runs, 1), failed[0]


def interleaved(names, rounds, measure):
    """Calls measure(name), which gives runs per second, CPU per run and
    failed runs, for every name in each of `rounds` rounds, the order
    reversed every other round. Returns each name's medians of runs per
    second and CPU per run, and a note of its failed runs ("" if none)."""
    figures = {name: [] for name in names}
    failures = collections.Counter()
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            runs, cpu, failed = measure(name)
            figures[name].append((runs, cpu))
            failures[name] += failed
    medians = {
        name: (statistics.median(v[0] for v in values), statistics.median(v[1] for v in values))
        for name, values in figures.items()
    }
    notes = {name: f"  ({failures[name]} failed)" if failures[name] else "" for name in names}
    return medians, notes


def drop_pages(paths):
    """Drops the files' pages from the page cache, to be read back by their
    execs, as after a reboot: freshly written copies of static binaries
    start faster (bench/README, "The binaries' pages"), and the floor and
    safeexec are installed shortly before this runs, bubblewrap long ago."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            print(f"cpu.py: cannot drop the pages of {path}: {e}", file=sys.stderr)
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def loop(prefix, secs, rounds, callers_list):
    commands = {
        "bare exec": ["/bin/true"],
        "floor": [f"{prefix}/floor/frontend", f"{prefix}/floor/helper"],
        "safeexec": [f"{prefix}/bin/safeexec", "--exec", "/bin/true"],
    }
    bwrap = shutil.which("bwrap")
    if bwrap:
        commands["bubblewrap"] = [bwrap, "--ro-bind", "/", "/", "--unshare-all",
                                  "--die-with-parent", "/bin/true"]
    for name, command in list(commands.items()):
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            line = (done.stderr.strip().splitlines() or ["exit status %d" % done.returncode])[0]
            print(f"{name}: left out: {line}")
            del commands[name]
    # Each program's file, and the helper each of the two frontends spawns.
    files = [c[0] for name, c in commands.items() if name != "bare exec"]
    if "floor" in commands:
        files.append(commands["floor"][1])
    if "safeexec" in commands:
        files.append(f"{prefix}/libexec/safeexec/safeexec-helper")
    for callers in callers_list:
        drop_pages(files)
        medians, notes = interleaved(
            list(commands), rounds, lambda name: rate(commands[name], callers, secs))
        print(f"\n{callers} caller{'s' if callers > 1 else ''}, medians of {rounds} rounds of {secs} s:")
        print(f"  {'command':<12} {'runs/s':>8} {'CPU ms/run':>11}")
        for name, (runs, cpu) in medians.items():
            print(f"  {name:<12} {runs:8.1f} {cpu:11.2f}{notes[name]}")
        if "bubblewrap" in medians:
            peer = medians["bubblewrap"][0]
            for name in ("safeexec", "floor"):
                if name in medians:
                    print(f"  {name} / bubblewrap, runs per second: {medians[name][0] / peer:.2f}x")
        if "safeexec" in medians and "floor" in medians:
            above = medians["safeexec"][1] - medians["floor"][1]
            print(f"  safeexec's CPU per run above the floor's: {above:+.2f} ms")
        if callers > 1 and "safeexec" in medians and "bubblewrap" in medians:
            budget(medians["bubblewrap"], medians["safeexec"][1])


def budget(peer, cpu):
    """What issue 11's throughput target (two callers or more) leaves a run
    of CPU time: 1.5 times bubblewrap's runs per second, on the machine's
    CPUs as busy as bubblewrap kept them, or all of them busy all the time."""
    runs, peer_cpu = peer
    cpus = len(os.sched_getaffinity(0))
    print(f"  1.5x bubblewrap's runs per second ({1.5 * runs:.0f}/s) leaves a run at most "
          f"{peer_cpu / 1.5:.2f} ms of CPU as busy as bubblewrap kept the CPUs, "
          f"{cpus * 1000 / (1.5 * runs):.2f} with all {cpus} busy; safeexec takes {cpu:.2f}")


def drive(secs, callers, command):
    runs, cpu, failed = rate(command, callers, secs)
    print(f"{runs:.1f} runs/s, {cpu:.2f} ms of CPU per run, {failed} failed")


# Each variant: the policy keys it changes, and safeexec's extra options.
VARIANTS = {
    "packaged policy": ({}, []),
    "cgroup = off": ({"cgroup": "off"}, []),
    "keep_networks = false": ({"keep_networks": "false"}, []),
    "the host's network": ({"allow_share_net": "true"}, ["--share-net"]),
    "no cgroup, host network": ({"cgroup": "off", "allow_share_net": "true"}, ["--share-net"]),
}


def policies(prefix, user, secs, rounds):
    path = f"{prefix}/etc/safeexec/policy"
    with open(path) as f:
        packaged = f.read()

    def write(text):
        with open(path + ".new", "w") as f:
            f.write(text)
        os.chmod(path + ".new", 0o644)
        os.rename(path + ".new", path)

    me = os.path.abspath(__file__)

    def measure(name):
        keys, options = VARIANTS[name]
        text = packaged
        for key, value in keys.items():
            text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
            if n != 1:
                sys.exit(f"cpu.py: the policy has no single line for {key}")
        write(text)
        command = [f"{prefix}/bin/safeexec", *options, "--exec", "/bin/true"]
        done = subprocess.run(
            ["setpriv", "--reuid", user, "--regid", user, "--init-groups", "env", "-i",
             "PATH=/usr/bin:/bin", "python3", me, "drive", str(secs), "2", *command],
            capture_output=True, text=True, cwd="/", check=True)
        runs, cpu, failed = re.match(r"([\d.]+) runs/s, ([\d.]+) ms of CPU per run, (\d+)",
                                     done.stdout).groups()
        return float(runs), float(cpu), int(failed)

    try:
        medians, notes = interleaved(list(VARIANTS), rounds, measure)
    finally:
        write(packaged)
    print(f"\nsafeexec --exec /bin/true, 2 callers, medians of {rounds} rounds of {secs} s:")
    print(f"  {'policy':<24} {'runs/s':>8} {'CPU ms/run':>11} {'CPU vs packaged':>16}")
    base = medians["packaged policy"][1]
    for name, (runs, cpu) in medians.items():
        print(f"  {name:<24} {runs:8.1f} {cpu:11.2f} {cpu - base:+16.2f}{notes[name]}")

FORK = re.compile(r"sched_process_fork: comm=(.*) pid=(\d+) child_comm=(.*) child_pid=(\d+)")


def entry(frames, kernel):
    """Where the kernel was entered: the system call, a page fault, or
    none (user space, or a kernel thread's work)."""
    if "x64_sys_call" in frames:
        i = frames.index("x64_sys_call")
        return frames[i - 1] if i > 0 else "system call"
    if "entry_SYSCALL_64_after_hwframe" in frames:
        i = frames.index("entry_SYSCALL_64_after_hwframe")
        return frames[max(0, i - 2)]
    if "asm_exc_page_fault" in frames:
        return "page fault"
    if kernel is False:
        return "user space"
    return "other"


def roles(seconds, cpus, frequency):
    role, children, samples = {}, collections.defaultdict(int), []
    for block in sys.stdin.read().split("\n\n"):
        lines = [line for line in block.strip().split("\n") if line.strip()]
        if not lines:
            continue
        fork = FORK.search(lines[0])
        if fork:
            parent, child = int(fork.group(2)), int(fork.group(4))
            children[parent] += 1
            if fork.group(1) == "safeexec":
                role[child] = "supervisor"
            elif role.get(parent) == "supervisor":
                # The network thread first, then init.
                role[child] = "network thread" if children[parent] == 1 else "init"
            elif role.get(parent) in ("init", "target"):
                role[child] = "target"
            continue
        head = lines[0].split()
        # Each frame: address, symbol, (object); the first is where the CPU was.
        frames = [line.split()[1] if len(line.split()) > 2 else "[unknown]" for line in lines[1:]]
        kernel = "kernel" in lines[1] if len(lines) > 1 else None
        samples.append((head[0], int(head[1]), frames, kernel))
    runs = sum(1 for r in role.values() if r == "supervisor")
    if not runs:
        sys.exit("cpu.py: no run of safeexec in the profile")
    per_sample = 1000 / frequency  # ms of CPU per sample
    totals, entries = collections.Counter(), collections.Counter()
    for comm, tid, frames, kernel in samples:
        if comm == "safeexec":
            part = "frontend"
        elif comm == "true":
            part = "target's program"
        elif tid in role:
            part = role[tid]
        elif comm == "swapper":
            part = "idle"
        elif re.match(r"(kworker|ksoftirqd|rcu|kthreadd|migration|kcompactd|kswapd)", comm):
            part = "kernel threads"
        else:
            part = "caller and others"
        totals[part] += 1
        entries[(part, entry(frames, kernel))] += 1
    busy = sum(v for k, v in totals.items() if k != "idle")
    print(f"{runs} runs in {seconds} s on {cpus} CPUs; {busy * per_sample / runs:.2f} ms of "
          f"busy CPU per run (sampled, with the profiler's own cost)")
    for part, n in totals.most_common():
        if part == "idle":
            continue
        print(f"  {n * per_sample / runs:6.3f} ms  {part}")
        top = sorted(((v, e) for (p, e), v in entries.items() if p == part), reverse=True)[:6]
        print("             " + ", ".join(f"{e} {v * per_sample / runs:.3f}" for v, e in top))


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "loop" and len(sys.argv) == 6:
        loop(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]),
             [int(c) for c in sys.argv[5].split(",")])
    elif mode == "drive" and len(sys.argv) > 4:
        drive(float(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
    elif mode == "policies" and len(sys.argv) == 6:
        policies(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
    elif mode == "roles" and len(sys.argv) == 5:
        roles(float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
