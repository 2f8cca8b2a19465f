#!/usr/bin/env python3
"""Where a server's resident memory goes in the load tool's idle measure, mapping by mapping.

usage: python3 benchmarks/rss-breakdown.py OUT_PREFIX MATCH -- TOOL_COMMAND...
  e.g. python3 benchmarks/rss-breakdown.py /tmp/rss Talki.Samples.Host.dll -- \
         dotnet benchmarks/Talki.Benchmarks.Load/bin/Release/net10.0/Talki.Benchmarks.Load.dll \
         --server talki --pairs '' --rates '' --idle 10000 --startups 1

Runs the load tool, and when it prints each of its three idle lines (the fresh baseline, the baseline after the JIT
warm-up, the K connections) copies /proc/PID/smaps of the process whose command line contains MATCH to
OUT_PREFIX.{fresh,warm,end}.smaps (end: the last, largest K when --idle names several) (MATCH must not appear in the tool's own command line: use the server's DLL name, not
a path given to the tool). Then prints the resident KiB of each kind of mapping at the three points and how much each
grew. Reading smaps takes the process's memory-map lock for a moment, three times per run; nothing is sampled between.

Kinds (Linux, .NET 10 with W^X on, the default):
- GC heap: anonymous mappings inside a contiguous reservation of 1 GiB or more (the GC reserves its range up front);
- JIT code and loader heaps: /memfd:doublemapper (executable memory is double-mapped through a memfd under W^X);
- malloc arenas: anonymous read-write mappings that start on a 64 MiB boundary (glibc's per-thread arenas) and the
  [heap] (the main arena);
- assemblies and native libraries: file-backed .dll and .so pages (page cache pages this process has touched);
- other anonymous memory: thread stacks, the runtime's own reservations.
"""
import os
import shutil
import subprocess
import sys

ARENA = 64 << 20
RESERVATION = 1 << 30
POINTS = (('fresh', 'idle: fresh baseline'), ('warm', 'for the JIT warm-up'), ('end', 'connections: RSS'))


def find(match, exclude):
    for p in os.listdir('/proc'):
        if not p.isdigit() or int(p) in exclude:
            continue
        try:
            c = open(f'/proc/{p}/cmdline', 'rb').read().replace(b'\0', b' ').decode(errors='replace')
        except OSError:
            continue
        if match in c and 'rss-breakdown' not in c:
            return int(p)
    return None


def vmas(path):
    out, cur = [], None
    for line in open(path):
        first = line.split(None, 1)[0]
        if '-' in first and not first.endswith(':'):
            parts = line.split()
            a, b = (int(x, 16) for x in parts[0].split('-'))
            cur = [a, b, parts[1], parts[5] if len(parts) > 5 else '', 0]
            out.append(cur)
        elif first == 'Rss:':
            cur[4] = int(line.split()[1])
    return out


def kinds(path):
    vs = vmas(path)
    # contiguous runs of anonymous mappings: a run spanning 1 GiB or more is the GC's reservation
    in_reservation = set()
    i = 0
    while i < len(vs):
        j = i
        while j + 1 < len(vs) and vs[j + 1][3] == '' and vs[j][3] == '' and vs[j][1] == vs[j + 1][0]:
            j += 1
        if vs[i][3] == '' and vs[j][1] - vs[i][0] >= RESERVATION:
            in_reservation.update(range(i, j + 1))
        i = j + 1
    sums = {}
    for n, (a, b, perms, name, rss) in enumerate(vs):
        if name.startswith('/memfd:doublemapper'):
            k = 'JIT code and loader heaps'
        elif name.endswith('.dll'):
            k = 'assemblies (file-backed)'
        elif name.endswith('.so') or '.so.' in name:
            k = 'native libraries (file-backed)'
        elif name == '[heap]':
            k = 'malloc arenas'
        elif name == '':
            if n in in_reservation:
                k = 'GC heap'
            elif a % ARENA == 0 and perms.startswith('rw'):
                k = 'malloc arenas'
            else:
                k = 'other anonymous (stacks, runtime)'
        else:
            k = 'other'
        sums[k] = sums.get(k, 0) + rss
    return sums


def main():
    if len(sys.argv) < 4 or '--' not in sys.argv:
        sys.exit(__doc__)
    prefix, match = sys.argv[1], sys.argv[2]
    cmd = sys.argv[sys.argv.index('--') + 1:]
    tool = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    taken = {}
    end_line = ''
    for line in tool.stdout:
        sys.stdout.write(line)
        for tag, key in POINTS:
            # the last K line wins: with --idle 1000,5000,10000 the end point is the 10,000
            if (tag not in taken or tag == 'end') and key in line and 'idle:' in line:
                pid = find(match, {tool.pid, os.getpid()})
                if pid is None:
                    print(f'rss-breakdown: no process matches {match!r} at the {tag} point', file=sys.stderr)
                    continue
                shutil.copyfile(f'/proc/{pid}/smaps', f'{prefix}.{tag}.smaps')
                taken[tag] = pid
                if tag == 'end':
                    end_line = line.strip()
    code = tool.wait()
    if len(taken) < len(POINTS):
        sys.exit(f'rss-breakdown: took {sorted(taken)} of {[t for t, _ in POINTS]}; the tool exited {code}')
    if len(set(taken.values())) != 1:
        sys.exit(f'rss-breakdown: the points were taken from different processes {taken}: run one server per invocation')
    s = {tag: kinds(f'{prefix}.{tag}.smaps') for tag, _ in POINTS}
    names = sorted({k for d in s.values() for k in d}, key=lambda k: -s['end'].get(k, 0))
    print(f'\nresident KiB of {match} (pid {taken["end"]}); end: {end_line}')
    print(f'{"kind":36} {"fresh":>8} {"warm":>8} {"end":>8} {"fresh→warm":>11} {"warm→end":>9}')
    for k in names + ['total']:
        f, w, e = ((sum(d.values()) if k == 'total' else d.get(k, 0)) for d in (s['fresh'], s['warm'], s['end']))
        print(f'{k:36} {f:8} {w:8} {e:8} {w - f:11} {e - w:9}')
    sys.exit(code)


if __name__ == '__main__':
    main()
