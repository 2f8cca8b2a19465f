#!/usr/bin/env bash
# Publishes the stack's two functions for Lambda (linux-arm64, provided.al2023). Run it before `cdk deploy`; `cdk synth`
# never builds anything.
#
#   ./publish-host.sh [--jit] [OUT_DIR]
#
# OUT_DIR/host: the sample host (the backend function, behind the Lambda Web Adapter) with the bootstrap script.
# OUT_DIR/authorizer: the $connect authorizer (samples/Talki.Samples.AwsAuthorizer), a custom runtime: one Native AOT
# executable named `bootstrap`, which Lambda runs as the function's runtime (no adapter; cold start: docs/performance.md).
# Default OUT_DIR: artifacts (the stack reads artifacts/host and artifacts/authorizer).
# Default: Native AOT, one native executable each.
# On an x64 machine that is a cross-compilation: it needs clang, llvm-objcopy and the aarch64 binutils, gcc and
# C library. If they are missing, the script installs them when it runs as root where apt-get exists (Debian, Ubuntu),
# and otherwise prints the apt-get command and stops.
# --jit: the self-contained JIT host for the backend instead (no native toolchain needed; its cold start is several times
# longer). The authorizer is always Native AOT: it is what every connect after an idle spell waits for.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
project="$here/../Talki.Samples.Host/Talki.Samples.Host.csproj"
authorizer_project="$here/../Talki.Samples.AwsAuthorizer/Talki.Samples.AwsAuthorizer.csproj"

mode=aot
if [ "${1:-}" = "--jit" ]; then mode=jit; shift; fi
case "${1:-}" in -*) echo "usage: $0 [--jit] [OUT_DIR]" >&2; exit 2 ;; esac
root="${1:-$here/artifacts}"
out="$root/host"
authorizer_out="$root/authorizer"

# Debian/Ubuntu packages of the linux-arm64 cross toolchain (the .NET docs' "Cross-compilation" page, Native AOT).
# zlib and brotli come with the Native AOT runtime pack, so no arm64 (multiarch) package is needed.
cross_packages="clang llvm binutils-aarch64-linux-gnu gcc-aarch64-linux-gnu libc6-dev-arm64-cross"

# Links a trivial program the way the ILCompiler links the host (clang --target, GNU ld, the same system libraries).
cross_toolchain_works() {
  command -v clang >/dev/null 2>&1 && command -v llvm-objcopy >/dev/null 2>&1 || return 1
  local tmp rc
  tmp="$(mktemp -d)"
  printf 'int main(void) { return 0; }\n' > "$tmp/probe.c"
  clang --target=aarch64-linux-gnu -fuse-ld=bfd -pie -pthread "$tmp/probe.c" -o "$tmp/probe" -ldl -lrt -lm \
    >/dev/null 2>&1 && rc=0 || rc=1
  rm -rf "$tmp"
  return "$rc"
}

if [ "$(uname -m)" != aarch64 ] && ! cross_toolchain_works; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing the linux-arm64 cross toolchain: apt-get install -y --no-install-recommends $cross_packages"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $cross_packages
  fi
  if ! cross_toolchain_works; then
    echo "The Native AOT linux-arm64 cross-compilation (the authorizer always, the host unless --jit) needs a cross" >&2
    echo "toolchain that is not installed. On Debian/Ubuntu:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $cross_packages" >&2
    exit 1
  fi
fi

# provided.al2023 has glibc 2.34: a binary linked against newer symbol versions would not start there.
check_glibc() {
  local readelf newest
  readelf="$(command -v aarch64-linux-gnu-readelf || command -v readelf)"
  newest="$("$readelf" --dyn-syms -W "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)"
  if [ "$(printf '%s\n2.34\n' "$newest" | sort -V | tail -1)" != 2.34 ]; then
    echo "$(basename "$1") needs glibc $newest; Lambda's provided.al2023 has 2.34. Link against an older C library." >&2
    exit 1
  fi
}

# The native debug symbols (tens of MB) are of no use inside a function: they go beside the artifact.
keep_symbols_apart() {
  rm -rf "$1.symbols"
  mkdir -p "$1.symbols"
  find "$1" -maxdepth 1 -name '*.dbg' -exec mv -t "$1.symbols/" {} +
}

rm -rf "$out" "$authorizer_out"
if [ "$mode" = aot ]; then
  dotnet publish "$project" -c Release -r linux-arm64 -p:PublishAot=true -p:InvariantGlobalization=true -o "$out"
  keep_symbols_apart "$out"
  check_glibc "$out/Talki.Samples.Host"
else
  dotnet publish "$project" -c Release -r linux-arm64 --self-contained true -p:InvariantGlobalization=true -o "$out"
fi
cp "$here/lambda/bootstrap" "$out/bootstrap"
chmod +x "$out/bootstrap" "$out/Talki.Samples.Host"

# The authorizer: Native AOT is its project's default (PublishAot), and its executable is the function's bootstrap.
dotnet publish "$authorizer_project" -c Release -r linux-arm64 -o "$authorizer_out"
keep_symbols_apart "$authorizer_out"
check_glibc "$authorizer_out/Talki.Samples.AwsAuthorizer"
find "$authorizer_out" -mindepth 1 -maxdepth 1 ! -name Talki.Samples.AwsAuthorizer -exec rm -rf {} +
mv "$authorizer_out/Talki.Samples.AwsAuthorizer" "$authorizer_out/bootstrap"
chmod +x "$authorizer_out/bootstrap"
echo "published ($mode) the backend to $out and the authorizer (Native AOT custom runtime) to $authorizer_out"
