#!/usr/bin/env bash
# Publishes the Talki browser app (samples/Talki.Samples.Browser, Release) to a temporary folder and prints the
# download size of its wwwroot: every file a browser fetches at start (_framework, _content, index.html, css, js…),
# once uncompressed and once as the brotli (.br) files the publish produces (what a host with MapStaticAssets serves).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

dotnet publish "$root/samples/Talki.Samples.Browser/Talki.Samples.Browser.csproj" -c Release -o "$out" -nologo -v quiet >"$out.log" 2>&1 \
  || { cat "$out.log" >&2; rm -f "$out.log"; exit 1; }
rm -f "$out.log"

www="$out/wwwroot"
raw=0
br=0
while IFS= read -r -d '' file; do
  size=$(stat -c %s "$file")
  raw=$((raw + size))
  if [[ -f "$file.br" ]]; then
    br=$((br + $(stat -c %s "$file.br")))
  else
    br=$((br + size))
  fi
done < <(find "$www" -type f ! -name '*.br' ! -name '*.gz' -print0)

human() { awk -v b="$1" 'BEGIN { printf "%.2f MB (%d bytes)", b / 1048576, b }'; }
echo "uncompressed: $(human "$raw")"
echo "brotli: $(human "$br")"
