#!/usr/bin/env bash
# Tries hgad as a new user would: builds the prebuilt binaries (scripts/prebuild.sh: the CPU one, and the
# CUDA variant when nvcc is found) and the TypeScript in
# a scratch copy of the repository, packs the package, installs the tarball into an empty project with
# no compiler, make or cmake on PATH and nothing but the npm registry (or its cache) to fetch from, then
# checks require('hgad'), import('hgad'), `npx hgad --help` and a small training + scoring run, the
# libraries the binaries need, which binary is loaded (HGAD_VARIANT), and what the install weighs. The
# repository is not modified. Last line: `N passed, N failed`.
# HGAD_PREBUILDS=<dir with linux-x64/> reuses a prebuild (and <dir>/../variants/, when there).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
start=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
finish() { echo "install test: $((SECONDS - start)) s"; echo "$passed passed, $failed failed"; exit $((failed > 0)); }
# No ONNXRUNTIME_NODE_INSTALL anywhere, nor the npm_config_ copy that `npm run` exports from the
# repository's .npmrc: the user's install below says --onnxruntime-node-install=skip, as the README tells
# users to, and must be what keeps onnxruntime-node's CUDA provider download from running.
unset ONNXRUNTIME_NODE_INSTALL ONNXRUNTIME_NODE_INSTALL_CUDA npm_config_onnxruntime_node_install \
  npm_config_onnxruntime_node_install_cuda

# 1. The package as it would be published.
stage=$work/stage
mkdir -p "$stage"
(cd "$root" && tar --exclude=./node_modules --exclude=./build --exclude=./build-asan --exclude=./dist --exclude=./prebuilds \
  --exclude=./.git -cf - .) | tar -xf - -C "$stage"
ln -s "$root/node_modules" "$stage/node_modules"
if ! (cd "$stage" && npx --no-install tsc -p tsconfig.json); then fail "tsc"; finish; fi
if [ -n "${HGAD_PREBUILDS:-}" ]; then
  mkdir -p "$stage/prebuilds" && cp -r "$HGAD_PREBUILDS/linux-x64" "$stage/prebuilds/"
  [ ! -d "$HGAD_PREBUILDS/../variants" ] || cp -r "$HGAD_PREBUILDS/../variants" "$stage/"
elif ! bash "$stage/scripts/prebuild.sh" "$stage" >"$work/prebuild.log" 2>&1; then
  cat "$work/prebuild.log"; fail "prebuild"; finish
fi
ok "prebuild ($((SECONDS - start)) s so far)"
grep -sE "^prebuild: (CUDA variant skipped|.* built in)" "$work/prebuild.log" || true
# The CUDA variant is built wherever prebuild.sh finds nvcc; the tarball must then carry it.
expect_cuda=0
if [ -f "$stage/variants/cuda/prebuilds/linux-x64/hgad.node" ] || { [ "${HGAD_PREBUILD_CUDA:-auto}" != off ] &&
  { [ -n "${CUDACXX:-}" ] || command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; }; }; then
  expect_cuda=1
fi
rm "$stage/node_modules"  # npm pack must not see the development dependencies
if ! (cd "$stage" && npm pack --json --pack-destination "$work" >"$work/pack.json" 2>"$work/pack.err"); then
  cat "$work/pack.err"; fail "npm pack"; finish
fi
tarball=$work/$(node -p "require('$work/pack.json')[0].filename")
node -e "
  const p = require('$work/pack.json')[0];
  const dev = p.files.map((f) => f.path).filter((f) =>
    /^(test|benchmarks|examples|\.ci|build|native\/tests|dist\/(benchmarks|examples|test))\/|\.map$|^(tsconfig|jest\.config)/.test(f));
  const need = ['prebuilds/linux-x64/hgad.node', 'prebuilds/linux-x64/libgomp.so.1', 'dist/lib/index.js',
    'dist/lib/index.d.ts', 'esm/index.mjs', 'esm/index.d.mts', 'LICENSE', 'README.md', 'binding.gyp'];
  if ($expect_cuda) need.push('variants/cuda/prebuilds/linux-x64/hgad.node', 'variants/cuda/prebuilds/linux-x64/libgomp.so.1');
  const absent = need.filter((f) => !p.files.some((x) => x.path === f));
  console.log('tarball ' + p.size + ' bytes, unpacked ' + p.unpackedSize + ' bytes, ' + p.entryCount + ' files');
  if (dev.length || absent.length) { console.log('dev-only: ' + dev.join(' ') + ' | missing: ' + absent.join(' ')); process.exit(1); }
" && ok "npm pack carries prebuilds/, $([ $expect_cuda = 1 ] && echo 'variants/cuda/, ')dist/, esm/ and no development files" || fail "npm pack contents"

# 2. A PATH with node, npm and basic tools only: no compiler, make or cmake.
bin=$work/bin
mkdir -p "$bin"
nodedir=$(dirname "$(command -v node)")
for t in node npm npx; do ln -s "$nodedir/$t" "$bin/$t"; done
for t in sh bash env cat ls mkdir rm cp mv chmod ln uname dirname basename readlink grep sed tr head tail wc; do
  p=$(command -v "$t") && ln -s "$p" "$bin/$t"
done
# OPENBLAS_CORETYPE and HGAD_VARIANT unset: the loader must pick the kernel family and the binary by itself.
hidden() { env -u CC -u CXX -u OPENBLAS_CORETYPE -u HGAD_VARIANT PATH="$bin" "$@"; }
if hidden sh -c 'for t in g++ gcc c++ cc clang make cmake; do command -v $t && exit 1; done; exit 0' >/dev/null; then
  ok "toolchain hidden from PATH"
else
  fail "toolchain hidden from PATH"
fi

# 3. Install into an empty project, skipping onnxruntime-node's CUDA provider download the way the README
# tells users to. The feed it downloads from is made unreachable for this install (onnxruntime-node's
# script sends its requests through global-agent, which takes the proxy from GLOBAL_AGENT_HTTP_PROXY;
# npm does not read that variable), so the install passes only if the download is skipped.
app=$work/app
mkdir -p "$app"
echo '{ "name": "hgad-install-test", "version": "1.0.0", "private": true }' >"$app/package.json"
no_feed=(GLOBAL_AGENT_HTTP_PROXY=http://127.0.0.1:9 GLOBAL_AGENT_HTTPS_PROXY=http://127.0.0.1:9 GLOBAL_AGENT_NO_PROXY=)
t0=$SECONDS
if (cd "$app" && hidden env "${no_feed[@]}" npm install --prefer-offline --no-audit --no-fund --foreground-scripts \
    --onnxruntime-node-install=skip "$tarball" >"$work/install.log" 2>&1); then
  ok "npm install of the tarball with --onnxruntime-node-install=skip, the CUDA provider's feed unreachable ($((SECONDS - t0)) s)"
else
  cat "$work/install.log"; fail "npm install of the tarball"; finish
fi
pkg=$app/node_modules/hgad
ort=$app/node_modules/onnxruntime-node
# onnxruntime-node's postinstall ran (npm printed its banner) and fetched nothing; the same script without
# the setting tries the feed and fails, so the setting is what made the install pass.
grep -A3 '^> onnxruntime-node@.* postinstall' "$work/install.log"
# (npm versions that hold back dependencies' install scripts until approved skip it altogether: the
# outcome checked is the same, no download and no CUDA provider.)
grep -q '^> onnxruntime-node@.* postinstall' "$work/install.log" || echo "  (npm did not run onnxruntime-node's postinstall)"
if ! grep -qE 'Downloading|nuget' "$work/install.log" && ! ls "$ort"/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so >/dev/null 2>&1 &&
  ! (cd "$ort" && hidden env -u npm_config_local_prefix -u npm_package_json "${no_feed[@]}" node script/install.js) >"$work/ort-noskip.log" 2>&1; then
  ok "onnxruntime-node's install script skipped its CUDA download (without the setting it fails: $(grep -m1 -E 'Error|ECONNREFUSED' "$work/ort-noskip.log"))"
else
  tail -n 40 "$work/install.log"; cat "$work/ort-noskip.log" 2>/dev/null
  fail "onnxruntime-node's CUDA download skipped by --onnxruntime-node-install=skip"
fi
addons=(prebuilds/linux-x64)
[ $expect_cuda = 0 ] || addons+=(variants/cuda/prebuilds/linux-x64)
for dir in "${addons[@]}"; do
  deps=$(ldd "$pkg/$dir/hgad.node")
  if ! grep -qE 'not found|dnnl|openblas|gfortran|libblas|libcudart|libcublas|libcuda\.so' <<<"$deps" &&
    grep -q "libgomp.so.1 => $pkg/$dir/libgomp.so.1" <<<"$deps"; then
    ok "$dir/hgad.node needs no BLAS, oneDNN, Fortran or CUDA library; libgomp from beside it"
  else
    echo "$deps"; fail "$dir/hgad.node dependencies"
  fi
done
[ $expect_cuda = 0 ] || ls -l "$pkg/prebuilds/linux-x64" "$pkg/variants/cuda/prebuilds/linux-x64" | grep -v '^total'

# 4. Use it as a user would, still without the toolchain.
cp "$root/scripts/install-smoke.js" "$app/"
(cd "$app" && hidden env HGAD_EXPECT_CUDA_VARIANT=$expect_cuda node install-smoke.js) >"$work/smoke.log" 2>&1
cat "$work/smoke.log"
passed=$((passed + $(grep -c '^ok ' "$work/smoke.log")))
failed=$((failed + $(grep -c '^FAIL ' "$work/smoke.log")))
grep -qE '^(ok|FAIL) HGAD_VARIANT=gpu' "$work/smoke.log" || fail "install-smoke.js ran to the end"
if (cd "$app" && hidden npx --no-install hgad --help) >"$work/help.log" 2>&1 && grep -q 'Usage: hgad' "$work/help.log"; then
  ok "npx hgad --help"
else
  cat "$work/help.log"; fail "npx hgad --help"
fi

# 5. What the install weighs (bytes on disk as unpacked, before file-system blocks).
echo "unpacked size: hgad $(du -sb "$pkg" | cut -f1) bytes; node_modules in all $(du -sb "$app/node_modules" | cut -f1) bytes"
(cd "$app/node_modules" && for d in $(ls -d @*/* [!@]* 2>/dev/null); do [ -d "$d" ] && printf '  %-34s %12s\n' "$d" "$(du -sb "$d" | cut -f1)"; done | sort -k2 -n -r | head -12)
finish
