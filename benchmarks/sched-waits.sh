#!/usr/bin/env bash
# Runs the load tool and records the kernel's scheduler (perf sched) during each server's open-loop phase, then says how
# long the server's and the tool's threads waited to run after being woken, and what the CPU did meanwhile
# (benchmarks/sched-waits.py). docs/performance.md, "Where the p99 at 2,000 msg/s waits".
#
#   bash benchmarks/sched-waits.sh OUT --server talki,bare --pairs '' --rates 2000 --idle '' --startups 1
#
# Every argument after OUT goes to the load tool (built by benchmarks/run.sh or `dotnet build benchmarks/Talki.Benchmarks.Load
# -c Release`); name one rate, so that each server has one open-loop phase. Recording starts when the tool prints a
# server's "settled:" line (its JIT has gone quiet; the open loop follows) and lasts RECORD_SECONDS (13: the tool's
# 2 s open-loop warm-up and 10 s window, and 1 s of slack). OUT gets the tool's log and table, its traces (--trace),
# perfN.data, timehistN.txt and wait-N.txt for the Nth server. Needs perf (Debian: linux-perf), root or
# kernel.perf_event_paranoid <= 1, and tracefs. perf costs CPU itself, most with a server whose thread pool spins (each
# spin's yield is a context switch to record): compare the servers' p99 from runs without it.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:?usage: sched-waits.sh OUT LOAD-TOOL-ARGUMENTS...}
shift
seconds=${RECORD_SECONDS:-13}
command -v perf > /dev/null || { echo "sched-waits.sh: perf is not installed (Debian: apt-get install linux-perf)" >&2; exit 2; }
tool=benchmarks/Talki.Benchmarks.Load/bin/Release/net10.0/Talki.Benchmarks.Load.dll
[ -f "$tool" ] || { echo "sched-waits.sh: build the load tool first (dotnet build benchmarks/Talki.Benchmarks.Load -c Release)" >&2; exit 2; }

mkdir -p "$out"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
dotnet "$tool" "$@" --trace "$out" --out "$out/table.md" > "$out/log.txt" 2>&1 &
load=$!
trap 'kill "$load" 2> /dev/null || true' EXIT

recorded=0
while kill -0 "$load" 2> /dev/null; do
  settled=$(grep -c "settled:" "$out/log.txt" || true)
  if [ "$settled" -gt "$recorded" ]; then
    recorded=$settled
    perf sched record -a -o "$out/perf$recorded.data" -- sleep "$seconds" > /dev/null 2>&1
  fi
  sleep 0.2
done
wait "$load" || echo "sched-waits.sh: the load tool exited with $? (its log: $out/log.txt)" >&2
trap - EXIT

for ((i = 1; i <= recorded; i++)); do
  perf sched timehist -i "$out/perf$i.data" > "$out/timehist$i.txt" 2> /dev/null
  python3 benchmarks/sched-waits.py "$out/timehist$i.txt" | tee "$out/wait-$i.txt"
done
grep -E "^## |open loop" "$out/log.txt" | grep -v "^- " || true
python3 benchmarks/trace-tail.py "$out"
