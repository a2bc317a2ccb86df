// Command-line parsing on node:util's parseArgs, with errors that name the bad flag and what it takes.
import { parseArgs, ParseArgsConfig } from 'node:util';

import { HgadArgumentError, HgadError } from '../errors';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

export function parse(command: string, args: string[], options: OptionSpec, allowPositionals = false): Parsed {
  try {
    const r = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
    return { values: r.values as Parsed['values'], positionals: r.positionals };
  } catch (e) {
    const message = (e as Error).message;
    const flag = /'(-{1,2}[\w-]+)/.exec(message)?.[1] ?? command;
    throw new HgadError('INVALID_ARGUMENT', `hgad ${command}: ${message} (see hgad ${command} --help)`, flag);
  }
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function required(p: Parsed, name: string, what: string): string {
  const v = str(p, name);
  if (v === undefined || v.length === 0) throw new HgadArgumentError(`--${name}`, what, v);
  return v;
}

export function int(p: Parsed, name: string, lo: number, hi: number): number | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^-?\d+$/.test(v) || !Number.isSafeInteger(n) || n < lo || n > hi) {
    throw new HgadArgumentError(`--${name}`, `an integer in [${lo}, ${hi}]`, v);
  }
  return n;
}

export function num(p: Parsed, name: string, lo: number, hi: number): number | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < lo || n > hi) throw new HgadArgumentError(`--${name}`, `a number in [${lo}, ${hi}]`, v);
  return n;
}

export function list(p: Parsed, name: string): string[] | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  const items = v.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (items.length === 0) throw new HgadArgumentError(`--${name}`, 'a comma-separated list', v);
  return items;
}

export function intList(p: Parsed, name: string, lo: number, hi: number): number[] | undefined {
  return list(p, name)?.map((s) => {
    const n = Number(s);
    if (!/^\d+$/.test(s) || n < lo || n > hi) throw new HgadArgumentError(`--${name}`, `comma-separated integers in [${lo}, ${hi}]`, s);
    return n;
  });
}

export function choice<T extends string>(p: Parsed, name: string, choices: readonly T[]): T | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  if (!(choices as readonly string[]).includes(v)) throw new HgadArgumentError(`--${name}`, `one of ${choices.join(', ')}`, v);
  return v as T;
}
