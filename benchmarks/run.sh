#!/usr/bin/env bash
# The load tool in one command (benchmarks/README.md): builds it in Release (with the sample host and the bare relay),
# installs the pinned peerjs-server (npm ci in tests/tools), raises the open files limit, and runs every measure on
# every server. Arguments go to the tool:
#   bash benchmarks/run.sh                                                   # the full matrix (about 10 minutes)
#   bash benchmarks/run.sh --server all --pairs 10 --seconds 3 --rates 2000 --idle 200   # a smoke run
# On a machine with 4+ cores, keep the servers and the clients apart:
#   CLIENT_CPUS=2-3 bash benchmarks/run.sh --server-cpus 0-1
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

echo "== npm ci (tests/tools: peerjs-server)"
npm ci --prefix tests/tools --no-audit --no-fund --loglevel=error

# talki-aot: the sample host published with Native AOT for this machine's architecture (a few minutes on two cores).
# Before the build, not after it: the publish rebuilds the Blazor app into its bin/Release with another fingerprint for
# dotnet.js, which the host's Release build output (the JIT host, the link-up benchmark's host) would then not serve.
if [[ " $* " =~ --server[=\ ]([^ ]*talki-aot) ]]; then
  case "$(uname -m)" in
    x86_64) rid=linux-x64 ;;
    aarch64) rid=linux-arm64 ;;
    *) echo "talki-aot: no runtime identifier for $(uname -m)" >&2; exit 2 ;;
  esac
  echo "== publish the sample host, Native AOT ($rid) -> artifacts/load/aot-host"
  dotnet publish samples/Talki.Samples.Host -c Release -r "$rid" -p:PublishAot=true -o artifacts/load/aot-host -nologo -v minimal
fi
echo "== build (Release)"
dotnet build benchmarks/Talki.Benchmarks.Load -c Release -nologo -v minimal

# 10,000 idle connections are 10,000 descriptors in this tool and as many in the server.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "== open files limit $(ulimit -n)"

pin=()
if [ -n "${CLIENT_CPUS:-}" ]; then
  pin=(taskset -c "$CLIENT_CPUS")
fi
exec "${pin[@]}" dotnet benchmarks/Talki.Benchmarks.Load/bin/Release/net10.0/Talki.Benchmarks.Load.dll "$@"
