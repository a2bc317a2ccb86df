/**
 * The npm registry the user's npm would use, read the way npm reads its configuration (highest first):
 * the environment (`npm_config_registry`, any case), the project .npmrc (in the nearest folder above the
 * working directory holding a package.json or node_modules), the user .npmrc (`npm_config_userconfig`,
 * else ~/.npmrc), the global npmrc (`npm_config_globalconfig`, else <prefix>/etc/npmrc), then
 * https://registry.npmjs.org/. `${VAR}` in .npmrc values is expanded from the environment, as npm does.
 *
 * Scopes: the packages hgad fetches are unscoped, so `@scope:registry` lines are honoured only for a
 * scoped name. Credentials: a `//host/path/:_authToken` (Bearer) or `:_auth` (Basic) line whose
 * host/path is a prefix of the registry's is sent to that registry's origin only (never across a redirect).
 * TLS: `cafile` (a PEM bundle; as in npm, its certificates replace Node's default ones for the registry
 * and any host it redirects to), so a registry behind a company's intercepting proxy works wherever npm
 * does. Not read: proxies, inline `ca`, strict-ssl (NODE_EXTRA_CA_CERTS also covers a private CA).
 */
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import * as path from 'node:path';

export const DEFAULT_REGISTRY = 'https://registry.npmjs.org/';

export interface NpmRegistry {
  /** Base URL, always ending in "/". */
  url: string;
  /** Where the URL came from, for messages: "npm_config_registry", "/home/me/.npmrc", "default". */
  source: string;
  /** Authorization header value for requests to the registry's origin, when the config holds one. */
  authorization?: string;
  /** npm's `cafile`: the certificate authorities to trust, and where the setting came from. */
  cafile?: { path: string; source: string };
}

export interface NpmConfigOptions {
  env?: NodeJS.ProcessEnv;
  /** Folder to start the project .npmrc search from (default process.cwd()). */
  cwd?: string;
  /** The package the registry is for; a scoped name also consults "@scope:registry". */
  packageName?: string;
}

type Ini = Map<string, string>;

function expand(value: string, env: NodeJS.ProcessEnv): string {
  return value.replace(/(\\*)\$\{([^${}]+)\}/g, (whole, slashes: string, name: string) => {
    if (slashes.length % 2 === 1) return whole.slice(1); // \${X} stays literal
    return slashes + (env[name] ?? '');
  });
}

/** key=value lines; ; and # comments; [sections] are not used by npm for these keys and end the file's top level. */
function parseIni(text: string, env: NodeJS.ProcessEnv): Ini {
  const out: Ini = new Map();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) continue;
    if (line.startsWith('[')) break;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = expand(line.slice(0, eq).trim(), env);
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'")))) value = value.slice(1, -1);
    out.set(key, expand(value, env));
  }
  return out;
}

function readIni(file: string, env: NodeJS.ProcessEnv): Ini | undefined {
  try {
    return parseIni(readFileSync(file, 'utf8'), env);
  } catch {
    return undefined; // absent or unreadable: npm ignores it too
  }
}

function present(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

/** npm's "local prefix": the nearest folder holding package.json or node_modules, else cwd. */
function projectRoot(cwd: string): string {
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    if (present(path.join(dir, 'package.json')) || present(path.join(dir, 'node_modules'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(cwd);
  }
}

function envValue(env: NodeJS.ProcessEnv, key: string): string | undefined {
  const want = `npm_config_${key}`.toLowerCase();
  for (const [k, v] of Object.entries(env)) if (k.toLowerCase() === want && v !== undefined && v !== '') return v;
  return undefined;
}

/** "//host[:port]/path/" of a URL: the key prefix npm uses for per-registry settings. */
export function nerfDart(url: string): string {
  const u = new URL(url);
  const p = u.pathname.endsWith('/') ? u.pathname : `${u.pathname}/`;
  return `//${u.host}${p}`;
}

export function npmRegistry(options: NpmConfigOptions = {}): NpmRegistry {
  const env = options.env ?? process.env;
  const scope = options.packageName?.startsWith('@') ? options.packageName.split('/')[0] : undefined;
  const prefix = envValue(env, 'prefix') ?? path.dirname(path.dirname(process.execPath));
  const files: Array<[string, Ini | undefined]> = [
    [path.join(projectRoot(options.cwd ?? process.cwd()), '.npmrc'), undefined],
    [envValue(env, 'userconfig') ?? path.join(env.HOME || homedir(), '.npmrc'), undefined],
    [envValue(env, 'globalconfig') ?? path.join(prefix, 'etc', 'npmrc'), undefined],
  ];
  for (const f of files) f[1] = readIni(f[0], env);

  const lookup = (key: string): [string, string] | undefined => {
    const fromEnv = envValue(env, key);
    if (fromEnv !== undefined) return [fromEnv, `npm_config_${key}`];
    for (const [file, ini] of files) {
      const v = ini?.get(key);
      if (v !== undefined && v !== '') return [v, file];
    }
    return undefined;
  };

  const found = (scope ? lookup(`${scope}:registry`) : undefined) ?? lookup('registry');
  const raw = found?.[0] ?? DEFAULT_REGISTRY;
  const url = raw.endsWith('/') ? raw : `${raw}/`;
  const out: NpmRegistry = { url, source: found?.[1] ?? 'default' };
  const cafile = lookup('cafile');
  if (cafile) out.cafile = { path: cafile[0], source: cafile[1] };

  // Credentials: the longest "//host/path/:key" prefix of the registry's nerf dart, in the same order.
  let dart: string;
  try {
    dart = nerfDart(url);
  } catch {
    return out; // an invalid URL is reported when it is used
  }
  for (let d = dart; d.length > 2; d = d.slice(0, d.slice(0, -1).lastIndexOf('/') + 1)) {
    const token = lookup(`${d}:_authToken`);
    if (token) return { ...out, authorization: `Bearer ${token[0]}` };
    const basic = lookup(`${d}:_auth`);
    if (basic) return { ...out, authorization: `Basic ${basic[0]}` };
    if (d.indexOf('/', 2) === d.length - 1) break; // reached "//host/"
  }
  return out;
}
