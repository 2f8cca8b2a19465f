#!/usr/bin/env python3
"""How late this machine runs a process woken by another: the floor under any server's tail latency.

    python3 benchmarks/wake-latency.py [COUNT] [INTERVAL_MS]

One process writes its monotonic clock into a pipe every INTERVAL_MS (0.5: the gap between two messages at 2,000 msg/s);
another blocks in read() and records how long after the write it ran. Nothing else in either process: on an idle
machine, a wake-up of 1 ms or more is the kernel's or the hypervisor's, not an application's.
docs/performance.md, "Where the p99 at 2,000 msg/s waits".
"""
import os
import struct
import sys
import time


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    interval = (float(sys.argv[2]) if len(sys.argv) > 2 else 0.5) / 1000
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(write_end)
        delays = []
        for _ in range(count):
            sent = struct.unpack("q", os.read(read_end, 8))[0]
            delays.append(time.perf_counter_ns() - sent)
        delays.sort()

        def at(q):
            return delays[min(len(delays) - 1, int(len(delays) * q))] / 1e6

        print(f"wake-ups {len(delays)}, one every {interval * 1000:g} ms: p50 {at(.5):.3f}, p99 {at(.99):.3f}, "
              f"p99.9 {at(.999):.3f}, max {delays[-1] / 1e6:.2f} ms; >= 0.5 ms {sum(d >= 500_000 for d in delays)}, "
              f">= 1 ms {sum(d >= 1_000_000 for d in delays)}")
        os._exit(0)
    os.close(read_end)
    due = time.perf_counter()
    for _ in range(count):
        due += interval
        ahead = due - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
        os.write(write_end, struct.pack("q", time.perf_counter_ns()))
    _, status = os.waitpid(child, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
