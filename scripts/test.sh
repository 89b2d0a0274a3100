#!/usr/bin/env bash
# Runs every test of ymo, in order, and stops at the first failure:
#
#   setup   scripts/setup.sh (packages, npm ci, native Release build)
#   publish deno publish --dry-run: the JSR package type-checks (with JSR's
#           rules) and has its files; runs offline
#   doc     deno doc --lint mod.ts: every export documented, no private types
#   native  the C tests, ctest in native/build
#   tsan    the C tests again, built with ThreadSanitizer (native/build-tsan)
#   asan    and with AddressSanitizer and leak checks (native/build-asan)
#   fuzz    the libFuzzer targets (request path, WebSocket frames), with ASan
#           and UBSan, for a bounded 60 s (scripts/fuzz.sh)
#   deno    the TypeScript suite under Deno: deno test -A tests/
#   bun     the same suite under Bun: bun test (root from bunfig.toml)
#
# Usage: bash scripts/test.sh [STEP...]   (no STEP: all of them, in order)
#
# To add a step, define a function step_NAME below and add NAME to STEPS.
# Each step runs in a subshell with `set -e`, so any failing command fails it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

STEPS=(setup publish doc native tsan asan fuzz deno bun)

step_setup() {
  bash scripts/setup.sh
}

step_publish() {
  deno publish --dry-run --allow-dirty
}

step_doc() {
  deno doc --lint mod.ts
}

step_native() {
  run_ctest native/build
}

# The C tests built with sanitizer $1 (thread or address) in native/build-$2;
# clang's runtime (libclang-rt-14-dev) when present, else GCC's. The first
# report fails a test (native/tests/CMakeLists.txt sets the options; leak
# checks are on with ASan).
sanitized_ctest() {
  local cc=gcc
  command -v clang >/dev/null 2>&1 && cc=clang
  cmake -S native -B "native/build-$2" -DYMO_SANITIZE="$1" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER="$cc" \
    --log-level=WARNING
  cmake --build "native/build-$2" -j2
  run_ctest "native/build-$2"
}

step_tsan() {
  sanitized_ctest thread tsan
}

step_asan() {
  sanitized_ctest address asan
}

step_fuzz() {
  bash scripts/fuzz.sh 60
}

step_deno() {
  deno test -A tests/
}

step_bun() {
  bun test
}

# ctest that fails when there are no tests, once native/tests is set up (the
# same condition under which native/CMakeLists.txt adds that folder).
run_ctest() {
  if [[ ! -f native/tests/CMakeLists.txt ]]; then
    echo "test.sh: native/tests/CMakeLists.txt does not exist yet; no C tests"
    return 0
  fi
  ctest --test-dir "$1" --output-on-failure --no-tests=error
}

# --- Runner ------------------------------------------------------------------

ALL_STEPS=("${STEPS[@]}")
if (($# > 0)); then STEPS=("$@"); fi
for name in "${STEPS[@]}"; do
  declare -F "step_$name" >/dev/null || {
    echo "test.sh: unknown step '$name' (steps: ${ALL_STEPS[*]})" >&2
    exit 2
  }
done

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
passed=0 failed=0 skipped=0 done_steps=()
started=$SECONDS

# Adds the test counts that a runner printed in its closing lines.
count_tests() {
  local log=$1 p=0 f=0 s=0 line
  while IFS= read -r line; do
    if [[ $line =~ ([0-9]+)\ tests\ failed\ out\ of\ ([0-9]+) ]]; then
      # ctest: "100% tests passed, 0 tests failed out of 12"
      f=$((f + BASH_REMATCH[1]))
      p=$((p + BASH_REMATCH[2] - BASH_REMATCH[1]))
    elif [[ $line =~ ^(ok|FAILED)\ \|\ ([0-9]+)\ passed.*\|\ ([0-9]+)\ failed ]]; then
      # deno test: "ok | 40 passed | 0 failed | 1 ignored (2s)"
      p=$((p + BASH_REMATCH[2]))
      f=$((f + BASH_REMATCH[3]))
      [[ $line =~ ([0-9]+)\ ignored ]] && s=$((s + BASH_REMATCH[1]))
    elif [[ $line =~ ^\ *([0-9]+)\ pass$ ]]; then
      p=$((p + BASH_REMATCH[1])) # bun test: " 40 pass"
    elif [[ $line =~ ^\ *([0-9]+)\ fail$ ]]; then
      f=$((f + BASH_REMATCH[1])) # bun test: " 0 fail"
    elif [[ $line =~ ^\ *([0-9]+)\ skip$ ]]; then
      s=$((s + BASH_REMATCH[1])) # bun test: " 1 skip"
    fi
  done < <(sed 's/\x1b\[[0-9;]*m//g' "$log")
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

for name in "${STEPS[@]}"; do
  printf '\n=== test.sh: %s ===\n' "$name"
  step_start=$SECONDS
  set +e
  (set -e; "step_$name") 2>&1 | tee "$logs/$name.log"
  status=${PIPESTATUS[0]}
  set -e
  count_tests "$logs/$name.log"
  elapsed=$((SECONDS - step_start))
  if ((status != 0)); then
    printf '\ntest.sh: step "%s" failed (exit %d) after %ds; passed before it: %s\n' \
      "$name" "$status" "$elapsed" "${done_steps[*]:-none}"
    exit "$status"
  fi
  done_steps+=("$name(${elapsed}s)")
done

printf '\ntest.sh: all steps passed in %ds: %s\n' \
  "$((SECONDS - started))" "${done_steps[*]}"
if ((skipped > 0)); then
  printf 'tests: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
else
  printf 'tests: %d passed, %d failed\n' "$passed" "$failed"
fi
