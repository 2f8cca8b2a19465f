#!/usr/bin/env python3
"""Says how long a load test's threads waited to run after being woken, and what the CPU did meanwhile.

    perf sched timehist -i perf.data > timehist.txt
    python3 benchmarks/sched-waits.py timehist.txt

Input: `perf sched timehist` (one line per context switch: the time the task left the CPU, the CPU, the task with
[tid/pid], how long it had slept, its scheduling delay from wake-up to running, and how long it ran). The load tool is
the process with the thread named "open-loop sched"; the server is the other process with the most ".NET Sockets"
switches. For the server's and the tool's threads: wake-ups, the scheduling delay's p50/p99/maximum, how many waits
were 0.5 ms or more and 1 ms or more. Then every wait of 1 ms or more of the server's socket event threads (with the
sample host's inline I/O they run the whole relay), classified by what the CPU the thread then ran on did during the
wait: idle (the thread was runnable while that CPU sat idle: the CPU was woken late, below the application; on a
virtual machine that includes the hypervisor), the load tool, the server itself, or a kernel thread by name.
"wake-ups" counts the thread's turns on a CPU, one per line of the input: a wake-up, or a yield (a spinning thread pool
yields often, so its count is mostly yields). docs/performance.md, "Where the p99 at 2,000 msg/s waits".
"""
import bisect
import collections
import re
import sys

TASK = re.compile(r"\[(\d+)/(\d+)\]$")


def read(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 6:
                continue
            try:
                left = float(parts[0])
                run_ms, delay_ms = float(parts[-1]), float(parts[-2])
            except ValueError:
                continue  # headers
            task = " ".join(parts[2:-3])
            m = TASK.search(task)
            name = task[: m.start()] if m else re.sub(r"\[\d+\]$", "", task)
            rows.append((left, parts[1], name, m.group(2) if m else None, run_ms / 1000, delay_ms / 1000))
    return rows


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: sched-waits.py TIMEHIST (the output of perf sched timehist)")
    rows = read(sys.argv[1])
    tools = {r[3] for r in rows if r[2] == "open-loop sched"}
    if not tools:
        sys.exit("sched-waits.py: no thread named 'open-loop sched' (was the load tool's open loop recorded?)")
    tool = tools.pop()
    servers = collections.Counter(r[3] for r in rows if r[3] not in (None, tool) and r[2] == ".NET Sockets")
    if not servers:
        sys.exit("sched-waits.py: no server process with a '.NET Sockets' thread")
    server = servers.most_common(1)[0][0]
    span = max(r[0] for r in rows) - min(r[0] for r in rows)
    cpus = len({r[1] for r in rows})
    print(f"recorded {span:.1f} s on {cpus} CPUs; load tool pid {tool}, server pid {server}")

    def stats(label, keep):
        v = sorted(r[5] * 1000 for r in rows if keep(r))
        if v:
            print(f"  {label:<26} wake-ups {len(v):>8}; delay p50 {v[len(v) // 2]:.3f}, p99 {v[int(len(v) * .99)]:.3f}, "
                  f"max {v[-1]:.2f} ms; >= 0.5 ms {sum(x >= .5 for x in v)}, >= 1 ms {sum(x >= 1 for x in v)}")

    for who, pid in (("server", server), ("tool", tool)):
        for thread in (".NET Sockets", ".NET TP Worker", "open-loop sched"):
            stats(f"{who} {thread}", lambda r, pid=pid, thread=thread: r[3] == pid and r[2] == thread)
    idle = sum(r[4] for r in rows if r[2] == "<idle>")
    print(f"  the CPUs were idle {100 * idle / (cpus * span):.0f} % of the time")

    def owner(r):
        if r[3] is None:
            return r[2]
        return "server" if r[3] == server else "load tool" if r[3] == tool else r[2]

    runs = sorted((r[0] - r[4], r[0], r[1], owner(r)) for r in rows)
    starts = [x[0] for x in runs]
    longest = max((r[4] for r in rows), default=0)
    count, waited = collections.Counter(), collections.Counter()
    for r in rows:
        if r[3] != server or r[2] != ".NET Sockets" or r[5] < 0.001:
            continue
        begin, end, cpu = r[0] - r[4] - r[5], r[0] - r[4], r[1]
        meanwhile = collections.Counter()
        for s, e, c, who in runs[bisect.bisect_left(starts, begin - longest):]:
            if s > end:
                break
            overlap = min(e, end) - max(s, begin)
            if overlap > 0 and c == cpu:
                meanwhile[who] += overlap
        busy = [(who, t) for who, t in meanwhile.most_common() if who != "<idle>"]
        kind = "idle (its CPU woken late)" if meanwhile["<idle>"] >= 0.5 * (end - begin) else (
            busy[0][0] if busy else "unknown")
        count[kind] += 1
        waited[kind] += end - begin
    total = sum(count.values())
    print(f"  the server's event threads waited 1 ms or more {total} times, {1000 * sum(waited.values()):.1f} ms in all; "
          "what their CPU did meanwhile:")
    for kind, n in count.most_common():
        print(f"    {kind:<28} {n:>4} waits, {1000 * waited[kind]:.1f} ms")


if __name__ == "__main__":
    main()
