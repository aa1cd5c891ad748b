#!/usr/bin/env python3
"""Reads the traces of bench/timeline.sh (one file per run) and prints where
the start-up of a run goes: the milestones of each run (median over the
runs), the median run's timeline of slow system calls and gaps, and the
system calls' time per process (median over the runs)."""
import re
import statistics
import sys

LINE = re.compile(r"^\s*(.+?)-(\d+)\s+\[\d+\]\s+\S+\s+([\d.]+): (\w+): (.*)$")


def syscall_names():
    names = {}
    for path in ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"):
        try:
            for line in open(path):
                m = re.match(r"#define __NR_(\w+) (\d+)", line)
                if m:
                    names[int(m.group(2))] = m.group(1)
            break
        except OSError:
            continue
    return names


NAMES = syscall_names()


def parse(path):
    """One run: roles, milestones (ms from the frontend's exec), slow calls."""
    role, events, enter, calls, last = {}, [], {}, [], {}
    oncpu, woken, waits, running, faults = [], {}, [], {}, {}
    t0 = None
    for line in open(path):
        m = LINE.match(line)
        if not m:
            continue
        pid, t, kind, rest = int(m.group(2)), float(m.group(3)) * 1000.0, m.group(4), m.group(5)
        if kind == "sched_process_exec":
            file = re.search(r"filename=(\S+)", rest).group(1)
            if t0 is None and file.endswith("/bin/safeexec"):
                t0, role[pid] = t, "frontend"
            elif file.endswith("safeexec-helper"):
                role[pid] = "supervisor"
            elif pid in role and role[pid] in ("target", "child"):
                role[pid] = "target"
            events.append((t, pid, f"exec {file}"))
        elif kind == "sched_process_fork":
            parent = int(re.search(r" pid=(\d+)", rest).group(1))
            child = int(re.search(r"child_pid=(\d+)", rest).group(1))
            parent_role = role.get(parent)
            role[child] = {"frontend": "child", "supervisor": "init", "init": "target"}.get(
                parent_role, f"child of {parent_role}")
            events.append((t, parent, f"fork -> {child}"))
        elif kind == "sched_process_exit":
            events.append((t, pid, "exit"))
        elif kind == "sched_switch":
            prev = int(re.search(r"prev_pid=(\d+)", rest).group(1))
            nxt = int(re.search(r"next_pid=(\d+)", rest).group(1))
            if prev in running:
                oncpu.append((running.pop(prev), t, prev))
            running[nxt] = t
            if nxt in woken:
                waits.append((woken.pop(nxt), nxt, t))
        elif kind in ("sched_wakeup", "sched_wakeup_new"):
            woken.setdefault(int(re.search(r" pid=(\d+)", rest).group(1)), t)
        elif kind == "page_fault_user" and t0 is not None:
            # From the frontend's exec on: not setpriv's, in the same pid.
            faults[pid] = faults.get(pid, 0) + 1
        elif kind == "sys_enter":
            nr = int(re.match(r"NR (\d+)", rest).group(1))
            if pid in last and t - last[pid] > 0:
                calls.append((last[pid], pid, "(user space or waiting)", t - last[pid]))
            enter[pid] = (t, nr)
        elif kind == "sys_exit":
            if pid in enter:
                start, nr = enter.pop(pid)
                calls.append((start, pid, NAMES.get(nr, f"NR {nr}"), t - start))
            last[pid] = t
    if t0 is None:
        return None
    # The helper starts the thread that makes the run's network namespace
    # (a fork event too) before it forks init: init is the one that forks.
    forked = {int(w.split()[-1]): p for _, p, w in events if w.startswith("fork -> ")}
    parents = set(forked.values())
    for child, parent in forked.items():
        if role.get(parent) == "supervisor" and child not in parents:
            role[child] = "network"
    known = set(role)
    end = max(t for t, _, _ in events)
    # Time from the frontend's exec to the last exit when no process of the
    # run was on a CPU: waiting for each other, for a CPU, or for a wakeup.
    spans = sorted((max(a, t0), min(b, end)) for a, b, _ in oncpu if b > t0 and a < end)
    for a, b, pid in oncpu:
        if pid in known and b > t0:
            key = "on CPU: " + role[pid]
            faults[key] = faults.get(key, 0) + b - max(a, t0)
    busy, reach = 0.0, t0
    for a, b in spans:
        if b > reach:
            busy += b - max(a, reach)
            reach = b
    latency = sum(t - w for w, pid, t in waits if pid in known and w >= t0)
    per_role = {}
    for pid, n in faults.items():
        if isinstance(pid, str):
            per_role[pid] = n
        elif pid in known:
            per_role[role[pid]] = per_role.get(role[pid], 0) + n
    return role, events, calls, t0, (end - t0 - busy, latency, per_role)


def milestones(run):
    role, events, calls, t0, _ = run
    marks = {}
    for t, pid, what in events:
        r = role.get(pid, "?")
        key = f"{r}: {what.split(' ')[0]}"
        if what.startswith("fork -> "):
            key = f"{r}: fork {role.get(int(what.split()[-1]), '?')}"
        if what.startswith("exec"):
            key = f"{r}: exec {what.split('/')[-1]}"
        marks.setdefault(key, t - t0)
    return marks


def main():
    args = sys.argv[1:]
    over = 40.0
    if args[:1] == ["--over"]:
        over, args = float(args[1]), args[2:]
    runs = [r for r in (parse(p) for p in args) if r]
    if not runs:
        sys.exit("timeline.py: error: no run was traced")
    ends = [max(t for t, _, _ in r[1]) - r[3] for r in runs]
    print(f"{len(runs)} runs traced; frontend exec to last exit: median {statistics.median(ends):.3f} ms, "
          f"min {min(ends):.3f}, max {max(ends):.3f}")
    idle = [r[4][0] for r in runs]
    latency = [r[4][1] for r in runs]
    print(f"no process of the run on a CPU: median {statistics.median(idle):.3f} ms; "
          f"from a wakeup to running, summed: median {statistics.median(latency):.3f} ms")
    roles = sorted({k for r in runs for k in r[4][2] if not k.startswith("on CPU")})
    print("page faults in user space (median): " + ", ".join(
        f"{k} {statistics.median([r[4][2].get(k, 0) for r in runs]):.0f}" for k in roles))
    print("time on a CPU, ms (median): " + ", ".join(
        f"{k} {statistics.median([r[4][2].get('on CPU: ' + k, 0) for r in runs]):.3f}" for k in roles))
    print("\nmilestones, ms from the frontend's exec (median over the runs)")
    marks = [milestones(r) for r in runs]
    keys = sorted({k for m in marks for k in m}, key=lambda k: statistics.median(
        [m[k] for m in marks if k in m]))
    for k in keys:
        vals = [m[k] for m in marks if k in m]
        print(f"  {statistics.median(vals):8.3f}  {k}")

    counts = {}
    for role, _, calls, t0, _ in runs:
        per = {}
        for start, pid, name, _ in calls:
            if not name.startswith("(") and start >= t0:
                per[role.get(pid, "?")] = per.get(role.get(pid, "?"), 0) + 1
        for k, v in per.items():
            counts.setdefault(k, []).append(v)
    if counts:
        print("system calls per process from the frontend's exec (median count; the target's"
              " include its program's): " + ", ".join(
            f"{k} {statistics.median(v):.0f}" for k, v in sorted(counts.items())))
    print("\nsystem call time per process, ms (median total over the runs; top 25)")
    totals = {}
    for role, _, calls, _, _ in runs:
        per = {}
        for _, pid, name, d in calls:
            key = (role.get(pid, "?"), name)
            per[key] = per.get(key, 0.0) + d
        for key, v in per.items():
            totals.setdefault(key, []).append(v)
    rows = sorted(((statistics.median(v + [0.0] * (len(runs) - len(v))), k) for k, v in totals.items()),
                  reverse=True)
    for v, (r, name) in rows[:25]:
        print(f"  {v / 1000 * 1000:8.3f}  {r:11} {name}")

    median_run = runs[sorted(range(len(runs)), key=lambda i: ends[i])[len(runs) // 2]]
    role, events, calls, t0, _ = median_run
    print(f"\nthe median run: events, and calls or gaps over {over:.0f} us (ms from the frontend's exec)")
    rows = [(t, pid, what, None) for t, pid, what in events]
    rows += [(t, pid, name, d) for t, pid, name, d in calls if d * 1000 >= over]
    for t, pid, what, d in sorted(rows):
        took = f"{d * 1000:7.0f} us" if d is not None else " " * 10
        print(f"  {t - t0:8.3f} {took}  {role.get(pid, '?'):11} {what}")


main()
