#!/usr/bin/env bash
# Publishes the sample host for Lambda (linux-arm64, self-contained .NET 10) into artifacts/host together with
# the bootstrap script. Run it before `cdk deploy`; `cdk synth` never builds anything.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/artifacts/host}"
rm -rf "$out"
dotnet publish "$here/../Talki.Samples.Host/Talki.Samples.Host.csproj" \
  -c Release -r linux-arm64 --self-contained true -p:InvariantGlobalization=true -o "$out"
cp "$here/lambda/bootstrap" "$out/bootstrap"
chmod +x "$out/bootstrap" "$out/Talki.Samples.Host"
echo "published to $out"
