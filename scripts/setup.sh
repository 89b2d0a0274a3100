#!/usr/bin/env bash
# Makes this checkout ready to run and test ymo, and does nothing it need not:
#
#   1. the Debian packages (build tools and libraries, plus clang for the
#      sanitizer and fuzz builds, wrk and curl for the benchmarks): installed
#      with apt-get when run as root, otherwise the exact command is printed;
#   2. the npm devDependencies (the pinned deno and bun): `npm ci`, only when
#      node_modules is missing or older than package-lock.json;
#   3. the native library: CMake configure and build into native/build.
#
# Usage: bash scripts/setup.sh   (safe to run again; fast when all is there)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Debian 12 names. libclang-rt-14-dev holds clang 14's sanitizer and libFuzzer
# runtimes; make and libc6-dev come with gcc on most systems but not all.
PACKAGES=(
  libev-dev cmake gcc make libc6-dev pkg-config node-llhttp
  zlib1g-dev libdeflate-dev libbrotli-dev # automatic response compression (compress.c)
  libssl-dev openssl # HTTPS (tls.c); the openssl command makes the test certificates
  liburing-dev # batched reads and writes (ring.c)
  clang libclang-rt-14-dev
  wrk curl
  nginx # tests/nginx_test.ts runs it in front of ymo
)

# --- 1. System packages ------------------------------------------------------
if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
    [[ $status == ii* ]] || missing+=("$pkg")
  done
  # npm runs step 2; Debian's package is enough for `npm ci`.
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if ((${#missing[@]} == 0)); then
    say "system packages: all present"
  elif [[ $(id -u) -eq 0 ]]; then
    say "system packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
    say "system packages: installed"
  else
    printf 'setup: missing system packages: %s\n' "${missing[*]}" >&2
    printf 'setup: install them with:\n  sudo apt-get install %s\n' \
      "${missing[*]}" >&2
    printf 'setup: then run this script again\n' >&2
    exit 1
  fi
else
  # Not Debian: check for the commands, and say what to install on macOS.
  for cmd in cmake cc pkg-config npm; do
    command -v "$cmd" >/dev/null 2>&1 ||
      die "$cmd not found; on macOS: brew install libev llhttp brotli libdeflate openssl@3 cmake pkg-config node"
  done
  say "system packages: no dpkg here; found cmake, cc, pkg-config and npm"
fi

# --- 2. npm devDependencies (deno, bun) ---------------------------------------
# npm writes node_modules/.package-lock.json on every install, so it is the
# stamp to compare with the lock file.
stamp=node_modules/.package-lock.json
if [[ ! -f $stamp || package-lock.json -nt $stamp ||
  ! -x node_modules/.bin/deno || ! -x node_modules/.bin/bun ]]; then
  say "npm: installing devDependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
else
  say "npm: node_modules is up to date"
fi
say "runtimes: deno $(node_modules/.bin/deno --version | head -n1 | cut -d' ' -f2)," \
  "bun $(node_modules/.bin/bun --version)"

# --- 3. Native library --------------------------------------------------------
[[ -f native/CMakeLists.txt ]] || die "native/CMakeLists.txt not found"
say "native: configuring native/build (Release)"
cmake -S native -B native/build -DCMAKE_BUILD_TYPE=Release --log-level=WARNING
say "native: building"
cmake --build native/build -j2
lib=native/build/libymo.so
[[ $(uname -s) == Darwin ]] && lib=native/build/libymo.dylib
[[ -f $lib ]] || die "the build did not produce $lib"
say "done: $lib is ready"
