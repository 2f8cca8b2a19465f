#!/usr/bin/env python3
"""Reads the load tool's open-loop traces (--trace DIR) and says what made each run's tail.

    python3 benchmarks/trace-tail.py DIR

For every SERVER-RATE-N.csv in DIR (columns: stamp_ms, latency_ms, link, sent_late_ms; benchmarks/README.md, --trace),
one line: the messages, p99 and maximum one-way latency; how many messages of the tail (at or above the p99) the tool's
own schedule had sent late by at least half their latency; the p99 of latency less that send lag (what the server and
the receiving side took); and the bursts: messages 1 ms late or more, grouped while less than 5 ms apart. A burst
with one message on each of many links is a stall of a whole process or of the machine, not one connection's queue.
docs/performance.md, "The p99 at 2,000 msg/s, message by message" and "Where the p99 at 2,000 msg/s waits".
"""
import csv
import glob
import os
import sys

BURST_GAP_MS = 5.0
LATE_MS = 1.0


def percentile(sorted_values, fraction):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def analyse(path):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        next(reader)  # header
        rows = [(float(s), float(l), int(k), float(g)) for s, l, k, g in reader]
    if not rows:
        return f"{os.path.basename(path):<22} no messages"
    rows.sort()
    latencies = sorted(r[1] for r in rows)
    p99 = percentile(latencies, 0.99)
    tail = [r for r in rows if r[1] >= p99]
    tool_made = sum(1 for r in tail if r[3] >= 0.5 * r[1])
    p99_less_lag = percentile(sorted(r[1] - r[3] for r in rows), 0.99)
    bursts = []
    for r in (r for r in rows if r[1] >= LATE_MS):
        if bursts and r[0] - bursts[-1][-1][0] < BURST_GAP_MS:
            bursts[-1].append(r)
        else:
            bursts.append([r])
    late = sum(len(b) for b in bursts)
    in_bursts_of_5 = sum(len(b) for b in bursts if len(b) >= 5)
    biggest = max(bursts, key=len) if bursts else []
    return (f"{os.path.basename(path):<22} n={len(rows)} p99 {p99:.2f} max {latencies[-1]:.2f} ms | "
            f"tail {len(tail)}, sent late by the tool for half their latency or more: {tool_made} | "
            f"p99 less the send lag {p99_less_lag:.2f} ms | {late} messages >= {LATE_MS:g} ms, "
            f"{in_bursts_of_5} of them in bursts of 5 or more; biggest burst {len(biggest)} messages on "
            f"{len(set(r[2] for r in biggest))} links")


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: trace-tail.py DIR (a folder the load tool's --trace wrote)")
    files = sorted(glob.glob(os.path.join(sys.argv[1], "*.csv")))
    if not files:
        sys.exit(f"trace-tail.py: no CSV file in {sys.argv[1]}")
    for path in files:
        print(analyse(path))


if __name__ == "__main__":
    main()
