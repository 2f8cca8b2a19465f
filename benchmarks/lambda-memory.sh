#!/usr/bin/env bash
# What the 4-member AWS call costs with the functions at each memory size, measured rather than assumed: the cost test
# (CallCostTests.FourMemberCallInProtocolV2V3OrV4, in the protocol version asked) with the Native AOT executables the stack
# deploys (the sample host as the backend, samples/Talki.Samples.AwsAuthorizer as the authorizer), each instance a process held to the CPU Lambda gives its memory size (MB / 1769 of a core, in 20 ms periods;
# init unconfined, as Lambda's init burst: LambdaCpuShare in tests/Talki.Signalling.ApiGatewayEmulator). One row per run:
# the warm call's handler times and price, the first call's price, the hosts' peak memory and how often the quota paused them.
#
# usage: benchmarks/lambda-memory.sh [--sizes stack,1024,512,256] [--repeat 3] [--host PATH] [--authorizer PATH] [--protocol 4]
#   --sizes memory sizes in MB for every function, or `stack` for the sizes the stack gives each (default: stack,1024,512,256)
#   --host  the executable to run as the backend (default: publishes artifacts/lambda/aot-host, linux-x64 Native AOT with
#           the stack's flags; this machine has no arm64)
#   --authorizer the authorizer function's executable (default: publishes artifacts/lambda/aot-authorizer, linux-x64 Native AOT)
#   --protocol the protocol version the call's clients speak: 4 (this release's client, default), 3 or 2
# Needs root and a cgroup CPU controller (v1 cpu or v2); dynalite comes from tests/tools as for the tests.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
sizes="stack,1024,512,256"
repeat=3
host=""
authorizer=""
protocol=4
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) sizes="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --host) host="$2"; shift 2 ;;
    --authorizer) authorizer="$2"; shift 2 ;;
    --protocol) protocol="$2"; shift 2 ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
  esac
done

if [ -z "$host" ]; then
  host="$ROOT/artifacts/lambda/aot-host/Talki.Samples.Host"
  echo "publishing the sample host with Native AOT to $(dirname "$host") ..." >&2
  dotnet publish "$ROOT/samples/Talki.Samples.Host" -c Release -r linux-x64 -p:PublishAot=true -p:InvariantGlobalization=true \
    -o "$(dirname "$host")" > "$ROOT/artifacts/lambda-publish.log" 2>&1 || { tail -20 "$ROOT/artifacts/lambda-publish.log"; exit 1; }
fi
[ -x "$host" ] || { echo "no executable at $host" >&2; exit 1; }
if [ -z "$authorizer" ]; then
  authorizer="$ROOT/artifacts/lambda/aot-authorizer/Talki.Samples.AwsAuthorizer"
  echo "publishing the authorizer with Native AOT to $(dirname "$authorizer") ..." >&2
  dotnet publish "$ROOT/samples/Talki.Samples.AwsAuthorizer" -c Release -r linux-x64 \
    -o "$(dirname "$authorizer")" > "$ROOT/artifacts/lambda-publish.log" 2>&1 || { tail -20 "$ROOT/artifacts/lambda-publish.log"; exit 1; }
fi
[ -x "$authorizer" ] || { echo "no executable at $authorizer" >&2; exit 1; }
dotnet build "$ROOT/tests/Talki.Signalling.Aws.IntegrationTests" -v q > /dev/null
case "$protocol" in 2|3|4) ;; *) echo "--protocol must be 2, 3 or 4" >&2; exit 2 ;; esac
report="$ROOT/tests/Talki.Signalling.Aws.IntegrationTests/bin/Debug/net10.0/aws-call-cost-v$protocol.txt"

echo "| MB | run | authorizer mean ms | backend mean / p95 ms | Lambda \$ | call \$ | first call \$ | peak RSS authorizer / backend MB | periods paused authorizer / backend |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for size in ${sizes//,/ }; do
  for run in $(seq 1 "$repeat"); do
    rm -f "$report"
    memory="$size"
    [ "$size" = "stack" ] && memory=""
    if ! TALKI_LAMBDA_HOST="$host" TALKI_LAMBDA_AUTHORIZER="$authorizer" TALKI_LAMBDA_CPU_SHARE=1 TALKI_LAMBDA_MEMORY_MB="$memory" \
        dotnet test "$ROOT/tests/Talki.Signalling.Aws.IntegrationTests" --no-build --filter "FullyQualifiedName~FourMemberCallInProtocolV2&DisplayName~version: $protocol" > /dev/null 2>&1 \
        || [ ! -s "$report" ]; then
      echo "| $size | $run | the cost test failed | | | | | | |"
      continue
    fi
    python3 - "$report" "$size" "$run" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def find(pattern, default="?"):
    m = re.search(pattern, text)
    return m.group(1) if m else default
auth = find(r"authorizer \d+ invocations \(mean ([\d.]+) ms\)")
back = find(r"backend \d+ \(.*?mean ([\d.]+) ms, p95")
p95 = find(r"p95 ([\d.]+) ms, measured")
lam = find(r"Lambda \$([\d.]+), DynamoDB")
total = find(r"total \$([\d.]+) \(\$")
first = find(r"The first call.*total \$([\d.]+) per")
rss = re.findall(r"peak RSS (\d+) MB", text)
paused = re.findall(r"paused in (\d+ of \d+) periods", text)
print(f"| {sys.argv[2]} | {sys.argv[3]} | {auth} | {back} / {p95} | {lam} | {total} | {first} | {' / '.join(rss) or '?'} | {' / '.join(paused) or '?'} |")
PY
  done
done
echo "($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); protocol v$protocol; host $host; authorizer $authorizer)"
