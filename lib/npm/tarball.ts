/**
 * One pinned npm package version fetched from the user's registry: the package document gives the
 * tarball URL (mirrors rewrite it), the tarball is fetched into memory and its sha512 must equal the
 * integrity pinned in hgad. Every failure is an HgadError 'IO' naming the registry and what was expected.
 */
import { readFile, stat } from 'node:fs/promises';

import { HgadError } from '../errors';
import { fetchBytes } from '../features/download';
import type { NpmRegistry } from './config';

export interface NpmPackageRef {
  name: string;
  version: string;
  /** Subresource-integrity string of the tarball, "sha512-<base64>". */
  integrity: string;
}

export interface FetchTarballOptions {
  onProgress?: (received: number, total: number) => void;
  idleTimeoutMs?: number;
}

const MAX_CAFILE = 16 << 20;
const PACKUMENT_ACCEPT = 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*';

function sha512Of(integrity: string): string {
  const m = /^sha512-([A-Za-z0-9+/]{86}==)$/.exec(integrity);
  if (!m) throw new HgadError('INVALID_ARGUMENT', `Expected a "sha512-<base64>" integrity but the preset pins "${integrity}"`, 'integrity');
  return m[1] as string;
}

/** The package document's URL: scoped names keep their "@" and encode the "/". */
export function packumentUrl(registry: string, name: string): string {
  return new URL(name.startsWith('@') ? `${name.slice(0, 1)}${encodeURIComponent(name.slice(1))}` : encodeURIComponent(name), registry).href;
}

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** Fetches and verifies the tarball of `pkg` from `registry`; returns its (gzipped) bytes. */
export async function fetchNpmTarball(pkg: NpmPackageRef, registry: NpmRegistry, options: FetchTarballOptions = {}): Promise<Buffer> {
  const expected = sha512Of(pkg.integrity);
  const where = `the npm registry ${registry.url} (from ${registry.source})`;
  const headers = registry.authorization ? { authorization: registry.authorization } : undefined;
  let ca: string | undefined;
  if (registry.cafile) {
    try {
      // A device or folder named there must not make the download read forever.
      const st = await stat(registry.cafile.path);
      if (!st.isFile() || st.size > MAX_CAFILE) throw new Error(`not a regular file of at most ${MAX_CAFILE} bytes`);
      ca = await readFile(registry.cafile.path, 'utf8');
    } catch (e) {
      throw new HgadError('IO', `Cannot read the cafile ${registry.cafile.path} (from ${registry.cafile.source}) that npm's configuration names: ${(e as Error).message}`, 'cafile');
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) {
      throw new HgadError('IO', `The cafile ${registry.cafile.path} (from ${registry.cafile.source}) holds no PEM certificate`, 'cafile');
    }
  }
  const common = { ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}), ...(ca !== undefined ? { ca } : {}) };
  let docUrl: string;
  try {
    docUrl = packumentUrl(registry.url, pkg.name);
  } catch {
    throw new HgadError('IO', `Cannot fetch ${pkg.name}@${pkg.version}: "${registry.url}" (from ${registry.source}) is not a URL`, 'registry');
  }

  let doc: Record<string, unknown> | undefined;
  try {
    const { bytes } = await fetchBytes(docUrl, { headers: { accept: PACKUMENT_ACCEPT, ...headers }, maxBytes: 64 << 20, ...common });
    doc = record(JSON.parse(bytes.toString('utf8')));
  } catch (e) {
    if (e instanceof SyntaxError) throw new HgadError('IO', `Cannot fetch ${pkg.name}@${pkg.version} from ${where}: ${docUrl} is not a JSON package document`, 'registry');
    throw new HgadError('IO', `Cannot fetch ${pkg.name}@${pkg.version} from ${where}: ${(e as Error).message}`, 'registry');
  }
  const dist = record(record(record(doc?.versions)?.[pkg.version])?.dist);
  const tarballUrl = dist?.tarball;
  if (typeof tarballUrl !== 'string') {
    throw new HgadError('IO', `Cannot fetch ${pkg.name}@${pkg.version} from ${where}: its package document (${docUrl}) lists no version ${pkg.version} with a tarball`, 'registry');
  }
  if (typeof dist?.integrity === 'string' && !dist.integrity.split(/\s+/).includes(pkg.integrity) && dist.integrity.startsWith('sha512-')) {
    throw new HgadError('IO', `${where} publishes ${pkg.name}@${pkg.version} with integrity ${dist.integrity}; hgad expects ${pkg.integrity} and does not download it`, 'integrity');
  }
  let tarUrl: string;
  try {
    tarUrl = new URL(tarballUrl, docUrl).href;
  } catch {
    throw new HgadError('IO', `Cannot fetch ${pkg.name}@${pkg.version} from ${where}: its tarball URL "${tarballUrl}" is not a URL`, 'registry');
  }
  // Credentials go to the registry's origin only (fetchBytes also drops them across redirects).
  const sameOrigin = new URL(tarUrl).origin === new URL(registry.url).origin;
  let got: { bytes: Buffer; digest?: Buffer };
  try {
    got = await fetchBytes(tarUrl, {
      hash: 'sha512', maxBytes: 1 << 30, ...common,
      ...(sameOrigin && headers ? { headers } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
  } catch (e) {
    throw new HgadError('IO', `Cannot fetch ${pkg.name}@${pkg.version} from ${where}: ${(e as Error).message}`, 'registry');
  }
  const actual = got.digest?.toString('base64') ?? '';
  if (actual !== expected) {
    throw new HgadError('IO', `The tarball of ${pkg.name}@${pkg.version} from ${where} (${tarUrl}, ${got.bytes.length} bytes) has integrity ` +
      `sha512-${actual}; expected ${pkg.integrity}. It was discarded.`, 'integrity');
  }
  return got.bytes;
}
