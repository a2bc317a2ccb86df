#!/usr/bin/env node
// Runs every test suite of the project and prints one closing line `N passed, N failed`:
// the native C++ tests (float64 gradient checks and friends), the Python baseline's self-check,
// and jest; with HGAD_TEST_INSTALL=1 the install test and with HGAD_TEST_SANITIZE=1 the sanitizer stage. Exit status is non-zero when anything failed or could not run.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
let passed = 0;
let failed = 0;

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options });
  process.stdout.write(r.stdout ?? '');
  process.stderr.write(r.stderr ?? '');
  return r;
}

/** Adds a suite's closing `N passed, N failed` line to the totals; a suite that printed none is one failure. */
function tally(r, name) {
  const m = /^(\d+) passed, (\d+) failed$/m.exec(r.stdout ?? '');
  if (m) {
    passed += Number(m[1]);
    failed += Number(m[2]);
  } else {
    console.error(`${name} did not report a result`);
    failed += 1;
  }
}

// The install test (scripts/test-install.sh: pack, install without a toolchain, use) when asked for, as
// .ci/run does; it ends with `N passed, N failed` too.
if (process.env.HGAD_TEST_INSTALL === '1') {
  tally(run('bash', [path.join(root, 'scripts', 'test-install.sh')]), 'scripts/test-install.sh');
}

// The sanitizer stage (scripts/sanitize.sh: build-asan/, the native tests and the addon's jest files under
// ASan + UBSan, any sanitizer report a failure) when asked for, as .ci/run does; `N passed, N failed` too.
if (process.env.HGAD_TEST_SANITIZE === '1') {
  tally(run('bash', [path.join(root, 'scripts', 'sanitize.sh')]), 'scripts/sanitize.sh');
}

// Native tests: their own harness ends with `N passed, N failed`. The second binary runs them over the
// baseline-ISA copy of the element-wise kernels.
for (const name of ['hgad_native_tests', 'hgad_native_tests_baseline']) {
  const bin = path.join(root, 'build', name);
  if (!fs.existsSync(bin)) {
    console.error(`native tests not built (${bin}): run npm run build first`);
    failed += 1;
    continue;
  }
  tally(run(bin, []), name);
}

// CUDA kernels against their CPU twins (built when a CUDA toolkit was found; without a device the
// binary says why it skipped and reports 0 passed).
const cudaBin = path.join(root, 'build', 'hgad_cuda_tests');
if (fs.existsSync(cudaBin)) {
  tally(run(cudaBin, []), 'hgad_cuda_tests');
} else {
  console.log('CUDA tests not built (no CUDA toolkit found at build time)');
}

// Python baseline self-check (runs where Debian's python3-torch is installed).
const py = '/usr/bin/python3';
const hasTorch = fs.existsSync(py) && spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
if (hasTorch) {
  const r = run(py, ['benchmarks/python/test_selfcheck.py']);
  r.status === 0 ? (passed += 1) : (failed += 1);
} else {
  console.log('skipping the Python baseline self-check: /usr/bin/python3 cannot import torch');
}

// jest, read through its JSON report.
const report = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'hgad-jest-')), 'report.json');
const jestArgs = [require.resolve('jest/bin/jest'), '--json', `--outputFile=${report}`, ...process.argv.slice(2)];
run(process.execPath, jestArgs, { stdio: ['ignore', 'inherit', 'inherit'] });
try {
  const j = JSON.parse(fs.readFileSync(report, 'utf8'));
  passed += j.numPassedTests;
  failed += j.numFailedTests;
  // A suite that failed to run (syntax error, crash) has no failed tests but must count.
  failed += j.testResults.filter((t) => t.status === 'failed' && t.assertionResults.length === 0).length;
} catch (e) {
  console.error(`jest produced no report: ${e.message}`);
  failed += 1;
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
