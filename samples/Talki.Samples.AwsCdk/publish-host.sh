#!/usr/bin/env bash
# Publishes the sample host for Lambda (linux-arm64, provided.al2023) into artifacts/host together with the bootstrap
# script. Run it before `cdk deploy`; `cdk synth` never builds anything.
#
#   ./publish-host.sh [--jit] [OUT_DIR]
#
# Default: Native AOT, one native executable (cold start to the first authorizer answer: docs/performance.md).
# On an x64 machine that is a cross-compilation: it needs clang, llvm-objcopy and the aarch64 binutils, gcc and
# C library. If they are missing, the script installs them when it runs as root where apt-get exists (Debian, Ubuntu),
# and otherwise prints the apt-get command and stops.
# --jit: the self-contained JIT host instead (no native toolchain needed; its cold start is several times longer:
# about 0.6 s against 0.08 s for AOT on x64, docs/performance.md).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
project="$here/../Talki.Samples.Host/Talki.Samples.Host.csproj"

mode=aot
if [ "${1:-}" = "--jit" ]; then mode=jit; shift; fi
case "${1:-}" in -*) echo "usage: $0 [--jit] [OUT_DIR]" >&2; exit 2 ;; esac
out="${1:-$here/artifacts/host}"

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

if [ "$mode" = aot ] && [ "$(uname -m)" != aarch64 ] && ! cross_toolchain_works; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing the linux-arm64 cross toolchain: apt-get install -y --no-install-recommends $cross_packages"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $cross_packages
  fi
  if ! cross_toolchain_works; then
    echo "The Native AOT linux-arm64 cross-compilation needs a cross toolchain that is not installed. On Debian/Ubuntu:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $cross_packages" >&2
    echo "or publish the JIT host instead: $0 --jit" >&2
    exit 1
  fi
fi

rm -rf "$out"
if [ "$mode" = aot ]; then
  dotnet publish "$project" -c Release -r linux-arm64 -p:PublishAot=true -p:InvariantGlobalization=true -o "$out"
  # The native debug symbols (about 60 MB) are of no use inside the function: they go beside the artifact.
  rm -rf "$out.symbols"
  mkdir -p "$out.symbols"
  find "$out" -maxdepth 1 -name '*.dbg' -exec mv -t "$out.symbols/" {} +
  # provided.al2023 has glibc 2.34: a binary linked against newer symbol versions would not start there.
  readelf="$(command -v aarch64-linux-gnu-readelf || command -v readelf)"
  newest_glibc="$("$readelf" --dyn-syms -W "$out/Talki.Samples.Host" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)"
  if [ "$(printf '%s\n2.34\n' "$newest_glibc" | sort -V | tail -1)" != 2.34 ]; then
    echo "Talki.Samples.Host needs glibc $newest_glibc; Lambda's provided.al2023 has 2.34. Link against an older C library." >&2
    exit 1
  fi
else
  dotnet publish "$project" -c Release -r linux-arm64 --self-contained true -p:InvariantGlobalization=true -o "$out"
fi
cp "$here/lambda/bootstrap" "$out/bootstrap"
chmod +x "$out/bootstrap" "$out/Talki.Samples.Host"
echo "published ($mode) to $out"
