#!/usr/bin/env bash
# Builds the libFuzzer target for the request path (native/fuzz/) with clang,
# ASan and UBSan, and runs it for a bounded time.
#
# Usage: bash scripts/fuzz.sh [SECONDS] [LIBFUZZER_ARG...]
#
#   SECONDS   how long to fuzz (default 60; 0 only replays the seed corpus)
#
# Environment:
#   YMO_FUZZ_KNOWN  known server bugs to tolerate while they wait for a fix,
#                   comma-separated (see KNOWN_NAMES in native/fuzz/
#                   fuzz_request.c), e.g. version,empty_name. Empty (the
#                   default) tolerates nothing.
#
# The seed corpus (native/fuzz/corpus/, committed) is copied into a working
# corpus in native/build-fuzz/corpus/, which grows across runs; crash, leak
# and timeout inputs go to native/build-fuzz/artifacts/. Replay one with:
#   native/build-fuzz/fuzz/ymo_fuzz_request native/build-fuzz/artifacts/crash-...
# (YMO_FUZZ_DEBUG=1 prints what each play handed over and got back.)
#
# Exit status: 0 when the run ends with no finding, non-zero otherwise.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-60}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]]; then
  echo "fuzz.sh: SECONDS must be a whole number, not '$seconds'" >&2
  exit 2
fi
if ! command -v clang >/dev/null 2>&1; then
  echo "fuzz.sh: clang is needed (libFuzzer): sudo apt-get install clang libclang-rt-14-dev" >&2
  exit 2
fi

build=native/build-fuzz
cmake -S native -B "$build" -DCMAKE_C_COMPILER=clang -DYMO_BUILD_FUZZ=ON \
  -DYMO_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo --log-level=WARNING
cmake --build "$build" --target ymo_fuzz_request -j2

mkdir -p "$build/corpus" "$build/artifacts"
cp -n native/fuzz/corpus/* "$build/corpus/" 2>/dev/null || true

export YMO_FUZZ_KNOWN=${YMO_FUZZ_KNOWN:-}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

if ((seconds == 0)); then
  # Replay: every seed once, in one process.
  exec "$build/fuzz/ymo_fuzz_request" -runs=0 \
    -artifact_prefix="$build/artifacts/" "$@" native/fuzz/corpus
fi

# The seeds come first so a regression among them shows at once; new inputs
# are written to the working corpus only.
exec "$build/fuzz/ymo_fuzz_request" \
  -max_total_time="$seconds" -max_len=8192 -timeout=10 \
  -print_final_stats=1 -artifact_prefix="$build/artifacts/" \
  "$@" "$build/corpus" native/fuzz/corpus
