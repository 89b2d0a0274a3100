#!/usr/bin/env bash
# Builds the libFuzzer targets (native/fuzz/) with clang, ASan and UBSan, and
# runs each for a bounded time: ymo_fuzz_request (the request path) and
# ymo_fuzz_ws (the WebSocket core).
#
# Usage: bash scripts/fuzz.sh [SECONDS] [LIBFUZZER_ARG...]
#
#   SECONDS   how long to fuzz in all, split evenly between the targets
#             (default 60; 0 only replays the seed corpora)
#
# Environment:
#   YMO_FUZZ_KNOWN  known server bugs to tolerate while they wait for a fix,
#                   comma-separated (see KNOWN_NAMES in native/fuzz/
#                   fuzz_request.c), e.g. version,empty_name. Empty (the
#                   default) tolerates nothing.
#
# Each target's seed corpus (native/fuzz/corpus/ and native/fuzz/corpus_ws/,
# committed) is copied into a working corpus in native/build-fuzz/ (corpus/,
# corpus_ws/), which grows across runs; crash, leak and timeout inputs go to
# native/build-fuzz/artifacts/ (artifacts_ws/). Replay one with:
#   native/build-fuzz/fuzz/ymo_fuzz_request native/build-fuzz/artifacts/crash-...
# (YMO_FUZZ_DEBUG=1 prints what each play handed over and got back.)
#
# Exit status: 0 when both runs end with no finding, non-zero otherwise (both
# targets run even when the first finds something).
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
cmake --build "$build" --target ymo_fuzz_request ymo_fuzz_ws -j2

export YMO_FUZZ_KNOWN=${YMO_FUZZ_KNOWN:-}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# run TARGET SEEDS WORK ARTIFACTS SECONDS MAX_LEN [LIBFUZZER_ARG...]
run() {
  local target=$1 seeds=$2 work=$3 artifacts=$4 secs=$5 max_len=$6
  shift 6
  mkdir -p "$work" "$artifacts"
  cp -n "$seeds"/* "$work/" 2>/dev/null || true
  echo "fuzz.sh: $target: ${secs}s" >&2
  if ((secs == 0)); then
    # Replay: every seed once, in one process.
    "$build/fuzz/$target" -runs=0 -artifact_prefix="$artifacts/" "$@" \
      "$seeds"
    return
  fi
  # The seeds come first so a regression among them shows at once; new
  # inputs are written to the working corpus only.
  "$build/fuzz/$target" \
    -max_total_time="$secs" -max_len="$max_len" -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$@" "$work" "$seeds"
}

# An odd second goes to the request path, the older and larger target.
ws_seconds=$((seconds / 2))
request_seconds=$((seconds - ws_seconds))
status=0
run ymo_fuzz_request native/fuzz/corpus "$build/corpus" "$build/artifacts" \
  "$request_seconds" 8192 "$@" || status=$?
run ymo_fuzz_ws native/fuzz/corpus_ws "$build/corpus_ws" \
  "$build/artifacts_ws" "$ws_seconds" 16384 "$@" || status=$?
exit "$status"
