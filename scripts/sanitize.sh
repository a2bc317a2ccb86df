#!/usr/bin/env bash
# The native tests and the addon's jest tests under AddressSanitizer + UndefinedBehaviorSanitizer.
# Builds the sanitizer build (CMake -DHGAD_SANITIZE=ON, CPU only) into build-asan/, leaving build/ alone,
# then runs build-asan/hgad_native_tests{,_baseline} and the jest files below with that addon loaded
# by node (HGAD_ADDON) and GCC's libasan preloaded into node. Every sanitizer report is written to a log
# file and counts as a failure, whatever the exit status of the process that hit it. Last line:
# `N passed, N failed`. HGAD_SANITIZE_BUILD=0 reuses build-asan/ as it is; HGAD_SANITIZE_NATIVE=0 skips
# the native tests.
#
# The jest files: every entry point of the addon, each through the tests that call it: NativeModel
# (constructor, tensorSpecs, getTensor, setTensor, adamSteps, setAdamSteps, setThreads, forward,
# inverse, score, gradients, cudaInfo) in model, model-file, prior and native-loader; anomalyMaps,
# mapLevelMaxima and mapSumMaxima in maps; colorize in heatmap; rocAuc, f1Max and aupro in metrics and
# evaluate; measureSgemm in native-loader; avgPool3x3, nearestDistances and distanceMaps in nearest;
# channelMoments, projectChannels and orthonormalRows in reduction. prior also trains and scores with sharp and onnxruntime-node
# (the demo backbone) in the same process. transfer frees the arrays of running calls (its child
# processes inherit the preloaded runtime and HGAD_ADDON, and their reports land in the same logs). Left out: pipeline, cli and the real-data runs (the same
# entry points through longer trainings; pipeline alone takes longer under ASan than all of these, and
# its fixed 300 s test timeouts do not allow for ASan's slowdown on a busy machine), parity and report,
# whose PyTorch and Chromium child processes would inherit the preloaded runtime.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$SECONDS
JEST_FILES=(test/model.test.ts test/model-file.test.ts test/prior.test.ts test/native-loader.test.ts
  test/maps.test.ts test/heatmap.test.ts test/metrics.test.ts test/evaluate.test.ts test/transfer.test.ts
  test/nearest.test.ts test/reduction.test.ts)
# HGAD_SANITIZE_JEST="test/a.test.ts test/b.test.ts" runs those files instead.
[ -z "${HGAD_SANITIZE_JEST:-}" ] || read -r -a JEST_FILES <<<"$HGAD_SANITIZE_JEST"
build=$root/build-asan
passed=0 failed=0
finish() { echo "sanitizer stage: $((SECONDS - start)) s"; echo "$passed passed, $failed failed"; exit $((failed > 0)); }

if [ "${HGAD_SANITIZE_BUILD:-1}" != 0 ]; then
  # CXX must be the GCC whose libasan is preloaded below.
  if ! npx --no-install cmake-js compile --out "$build" --CDHGAD_SANITIZE=ON --CDHGAD_CUDA=OFF >"$build.log" 2>&1; then
    tail -40 "$build.log"; echo "sanitizer build failed (log: $build.log)"; failed=$((failed + 1)); finish
  fi
  echo "sanitizer build: $((SECONDS - start)) s"
fi
addon=$build/Release/hgad.node
libasan=$(g++ -print-file-name=libasan.so)
if [ ! -f "$addon" ] || [ ! -e "$libasan" ]; then
  echo "missing $addon or libasan ($libasan)"; failed=$((failed + 1)); finish
fi
libasan=$(readlink -f "$libasan")

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
# detect_leaks=0: node, V8 and the other native modules leave plenty allocated at exit, none of it ours
# to judge (the native test binaries, all ours, run with leak detection on). allocator_may_return_null=1:
# an allocation too big to satisfy throws std::bad_alloc as it does without ASan (the engine turns it into
# a typed error) instead of ending the process with an ASan error. halt_on_error: the first report ends
# the process; log_path: reports go to files ($logs/asan.<pid>), also those of child processes.
asan_common="halt_on_error=1:allocator_may_return_null=1:detect_stack_use_after_return=1:check_initialization_order=1"
# UBSan ignores log_path when it runs inside ASan's runtime: its reports go to stderr, which is kept and
# searched (each one aborts its process too: -fno-sanitize-recover=undefined).
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

found=0
reports() {  # $1: what ran, $2: its output. Sets $found to the reports since the last call; prints them.
  local f n
  found=0
  for f in "$logs"/asan.*; do
    [ -e "$f" ] || continue
    echo "---- sanitizer report $(basename "$f") ($1)"; cat "$f"; found=$((found + 1))
    mv "$f" "$logs/seen.$(basename "$f")"
  done
  n=$(grep -c -E 'runtime error: |ERROR: (Address|Leak|UndefinedBehavior)Sanitizer' "$2")
  [ "$n" -eq 0 ] || grep -E -A12 'runtime error: |ERROR: (Address|Leak|UndefinedBehavior)Sanitizer' "$2"
  found=$((found + n))
}

# 1. The native tests (their own harness ends with `N passed, N failed`).
native_tests=(hgad_native_tests hgad_native_tests_baseline)
[ "${HGAD_SANITIZE_NATIVE:-1}" != 0 ] || native_tests=()
for name in "${native_tests[@]}"; do
  ASAN_OPTIONS="$asan_common:detect_leaks=1:log_path=$logs/asan" "$build/$name" >"$logs/$name.out" 2>&1
  status=$?
  grep -E '^(FAIL|    )' "$logs/$name.out"
  reports "$name" "$logs/$name.out"
  p=0 f=0
  if m=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$logs/$name.out"); then
    read -r p _ f _ <<<"$m"
  else
    echo "$name did not report a result"; f=1
  fi
  # A report, or an exit status the failed tests do not explain, is a failure of its own.
  [ $status -eq 0 ] || [ $f -gt 0 ] || [ $found -gt 0 ] || f=1
  passed=$((passed + p)); failed=$((failed + f + found))
  echo "$name under ASan+UBSan: $p passed, $f failed, $found sanitizer reports, exit status $status ($((SECONDS - start)) s so far)"
done

# 2. The addon's jest tests, in one node process with the runtime preloaded.
report=$logs/jest.json
LD_PRELOAD="$libasan" ASAN_OPTIONS="$asan_common:detect_leaks=0:log_path=$logs/asan" HGAD_ADDON="$addon" \
  HGAD_VARIANT=cpu node node_modules/jest/bin/jest.js --ci --runInBand --testTimeout=600000 --json --outputFile="$report" "${JEST_FILES[@]}" \
  2>&1 | tee "$logs/jest.out"
status=${PIPESTATUS[0]}
reports jest "$logs/jest.out"
p=0 f=0
if j=$(node -e "
  const j = require(process.argv[1]);
  const broken = j.testResults.filter((t) => t.status === 'failed' && t.assertionResults.length === 0).length;
  console.log(j.numPassedTests + ' ' + (j.numFailedTests + broken) + ' ' + j.numTotalTestSuites);
" "$report" 2>/dev/null); then
  read -r p f suites <<<"$j"
else
  echo "jest produced no report"; f=1 suites='?'
fi
[ $status -eq 0 ] || [ $f -gt 0 ] || [ $found -gt 0 ] || f=1
passed=$((passed + p)); failed=$((failed + f + found))
echo "jest under ASan+UBSan ($suites files): $p passed, $f failed, $found sanitizer reports, exit status $status"
finish
