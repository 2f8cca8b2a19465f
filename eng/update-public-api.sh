#!/usr/bin/env bash
# Rewrites src/*/PublicAPI.Unshipped.txt from the analyzer's RS0016 (symbol not declared) and RS0017 (declared symbol
# gone) diagnostics, so a deliberate change of the public surface is one command and one reviewed diff.
# Usage: bash eng/update-public-api.sh [--ship]   (--ship moves every unshipped line into PublicAPI.Shipped.txt)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
dotnet build Talki.Signalling.slnx -nologo -v q -p:TreatWarningsAsErrors=false -p:WarningsAsErrors= --no-incremental >"$log" 2>&1 || true
python3 - "$log" "${1:-}" <<'PY'
import re, sys, os, collections
log, mode = sys.argv[1], sys.argv[2]
added, removed = collections.defaultdict(set), collections.defaultdict(set)
pattern = re.compile(r"^(/\S+?\.(?:cs|txt))\(\d+,\d+\): (?:warning|error) (RS0016|RS0017): Symbol '(.+)' is (?:not part of the declared public API|part of the declared API, but is either not public or could not be found)(?: \(\S+\))? \[(\S+\.csproj)\]")
for line in open(log, encoding="utf-8", errors="replace"):
    m = pattern.match(line.strip())
    if not m:
        continue
    project = os.path.dirname(m.group(4))
    (added if m.group(2) == "RS0016" else removed)[project].add(m.group(3))
for project in sorted(set(added) | set(removed)):
    for name in ("PublicAPI.Shipped.txt", "PublicAPI.Unshipped.txt"):
        path = os.path.join(project, name)
        lines = [l.rstrip("\n") for l in open(path, encoding="utf-8")] if os.path.exists(path) else ["#nullable enable"]
        body = [l for l in lines[1:] if l and l not in removed[project]]
        if name.endswith("Unshipped.txt"):
            body += sorted(added[project] - set(body))
        open(path, "w", encoding="utf-8").write("\n".join(["#nullable enable"] + sorted(set(body))) + "\n")
    print(f"{project}: +{len(added[project])} -{len(removed[project])}")
if mode == "--ship":
    for project in sorted(os.listdir("src")):
        unshipped = os.path.join("src", project, "PublicAPI.Unshipped.txt")
        shipped = os.path.join("src", project, "PublicAPI.Shipped.txt")
        if not os.path.exists(unshipped):
            continue
        new = [l.rstrip("\n") for l in open(unshipped, encoding="utf-8")][1:]
        old = [l.rstrip("\n") for l in open(shipped, encoding="utf-8")][1:] if os.path.exists(shipped) else []
        removed = {l[len("*REMOVED*"):] for l in new if l.startswith("*REMOVED*")}
        kept = set(l for l in old + new if l and not l.startswith("*REMOVED*") and l not in removed)
        open(shipped, "w", encoding="utf-8").write("\n".join(["#nullable enable"] + sorted(kept)) + "\n")
        open(unshipped, "w", encoding="utf-8").write("#nullable enable\n")
PY
