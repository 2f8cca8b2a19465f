#!/usr/bin/env bash
# Samples one server's CPU with perf while the load tool drives it, and prints where the time went (by library, then
# the hottest functions, .NET's by name). docs/performance.md, "The WebSocket's flush, and where the CPU goes".
#
#   bash benchmarks/profile.sh talki|bare saturate [PAIRS]      # saturation over PAIRS pairs (100)
#   bash benchmarks/profile.sh talki|bare rate N                # open loop at N msg/s over 100 pairs
#
# The load tool runs the phase for 20 s; perf samples the server process at 499 Hz for 10 s of it, from 3 s after the
# phase started (once the server's background JIT had gone quiet: the load tool's --jit-quiet). The server runs with
# DOTNET_PerfMapEnabled=1 (the JIT writes /tmp/perf-PID.map) and DOTNET_EnableWriteXorExecute=0 (JIT-compiled code in
# anonymous memory, which perf names from that map). Needs perf (Debian: linux-perf) and the right to attach to the
# process (root, or kernel.perf_event_paranoid <= 1).
set -euo pipefail
cd "$(dirname "$0")/.."

server=${1:?talki or bare}
mode=${2:?saturate or rate}
case "$server" in
  talki) pattern='Talki.Samples.Host.dll --urls http://127.0.0.1' ;;
  bare) pattern='Talki.Benchmarks.BareRelay.dll --urls http://127.0.0.1' ;;
  *) echo "profile.sh: the server is talki or bare, not '$server'" >&2; exit 2 ;;
esac
case "$mode" in
  saturate) pairs=${3:-100}; rates='' ;;
  rate) pairs=''; rates=${3:?the rate, in msg/s} ;;
  *) echo "profile.sh: the phase is saturate or rate, not '$mode'" >&2; exit 2 ;;
esac
command -v perf > /dev/null || { echo "profile.sh: perf is not installed (Debian: apt-get install linux-perf)" >&2; exit 2; }

out=artifacts/load/profile-$server-$mode-$(date -u +%Y%m%dT%H%M%S)
mkdir -p artifacts/load
bash benchmarks/run.sh --server "$server" --pairs "$pairs" --rates "$rates" --idle '' --startups 1 --seconds 20 \
  --server-env DOTNET_PerfMapEnabled=1,DOTNET_EnableWriteXorExecute=0 --out "$out.md" > "$out.log" 2>&1 &
run=$!
# The measured phase starts once the server's JIT has gone quiet after the clients connected (the "settled" line).
until grep -q 'settled' "$out.log"; do
  kill -0 "$run" 2> /dev/null || { echo "profile.sh: the load tool ended before its measured phase; see $out.log" >&2; exit 1; }
  sleep 0.5
done
sleep 3
pid=$(pgrep -f "$pattern" | head -1 || true)
[ -n "$pid" ] || { echo "profile.sh: no $server server process found; see $out.log" >&2; wait "$run" || true; exit 1; }
if ! perf record -F 499 -g -p "$pid" -o "$out.perf" -- sleep 10 > "$out.perf.log" 2>&1; then
  echo "profile.sh: perf record failed (see $out.perf.log)" >&2
  wait "$run" || true
  exit 1
fi
wait "$run" || true

grep -E '^  (saturation|open loop)' "$out.log" || true
echo "== by thread ($out.perf; '.NET Tiered Com' is the JIT's background compilation)"
perf report -i "$out.perf" --no-children -g none --sort comm 2> /dev/null | grep '%' | head -8
echo "== by library"
perf report -i "$out.perf" --no-children -g none --sort dso 2> /dev/null | grep '%' | head -10
echo "== hottest functions"
perf report -i "$out.perf" --no-children -g none --sort dso,sym 2> /dev/null | grep '%' | head -40 | cut -c1-220
