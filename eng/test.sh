#!/usr/bin/env bash
# Runs every test of the repository and ends with one line CI reads:
#   tests: N passed, N failed, N skipped
# Exits non-zero when anything failed (or nothing ran).
#
# It installs what the tests need; the suites start their own servers (Kestrel hosts, redis-server,
# turnserver) on 127.0.0.1 with free ports and stop them. Nothing is assumed to be on the machine
# except the .NET SDK and apt.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
configuration="${CONFIGURATION:-Debug}"
results="$root/artifacts/test-results"
rm -rf "$results"
mkdir -p "$results"

if ! command -v dotnet >/dev/null 2>&1; then
  echo "eng/test.sh: the .NET 10 SDK (dotnet) is required" >&2
  echo "tests: 0 passed, 1 failed, 0 skipped"
  exit 1
fi

# Debian packages the suites start themselves (on 127.0.0.1, free ports): redis-server (sessions),
# coturn (TURN), chromium (the browser sample's end-to-end tests drive /usr/bin/chromium headless through
# Playwright; never `playwright install`). Installed once; apt-get update runs only when something is missing.
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v turnserver >/dev/null 2>&1 || need+=(coturn)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ "${#need[@]}" -gt 0 ]; then
  echo "== install ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  if ! { $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}"; }; then
    echo "eng/test.sh: could not install ${need[*]}" >&2
    echo "tests: 0 passed, 1 failed, 0 skipped"
    exit 1
  fi
  # The packages' own services are not needed (the tests start their own instances).
  for service in redis-server coturn; do
    $sudo_cmd service "$service" stop >/dev/null 2>&1 || true
  done
fi

# Node tools the suites start themselves (dynalite for DynamoDB), pinned by tests/tools/package-lock.json.
if [ -f tests/tools/package-lock.json ]; then
  echo "== npm ci (tests/tools)"
  if ! npm ci --prefix tests/tools --no-audit --no-fund --loglevel=error; then
    echo "eng/test.sh: npm ci failed in tests/tools" >&2
    echo "tests: 0 passed, 1 failed, 0 skipped"
    exit 1
  fi
fi

echo "== restore and build ($configuration)"
if ! dotnet build Talki.Signalling.slnx -c "$configuration" -nologo -v minimal; then
  echo "tests: 0 passed, 1 failed, 0 skipped"
  exit 1
fi

test_exit=0
for project in $(find tests -name '*Tests.csproj' | sort); do
  name="$(basename "$project" .csproj)"
  echo "== test $name"
  dotnet test "$project" -c "$configuration" --no-build -nologo \
    --logger "trx;LogFileName=$name.trx" --logger "console;verbosity=minimal" \
    --results-directory "$results" || test_exit=$?
done

passed=0 failed=0 skipped=0 files=0
shopt -s nullglob
for trx in "$results"/*.trx; do
  files=$((files + 1))
  counters="$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)"
  value() { printf '%s' "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
  passed=$((passed + $(value passed)))
  failed=$((failed + $(value failed) + $(value error) + $(value timeout) + $(value aborted)))
  skipped=$((skipped + $(value notExecuted)))
done

if [ "$files" -eq 0 ] || { [ "$test_exit" -ne 0 ] && [ "$failed" -eq 0 ]; }; then
  # A crashed test host leaves no (or an incomplete) TRX: count it as a failure.
  failed=$((failed + 1))
fi

echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$test_exit" -eq 0 ]
