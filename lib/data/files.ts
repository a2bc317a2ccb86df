// File-system helpers for the dataset readers: folder listings in a deterministic order, and the image
// extensions hgad accepts. Every failure becomes an HgadError naming the path.
import { promises as fs } from 'fs';
import * as path from 'path';
import { HgadError } from '../errors';

/** Extensions read as images (compared case-insensitively). */
export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp'];

export function isImageName(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(path.extname(name).toLowerCase());
}

/** Code-unit order: the same on every machine and locale, unlike localeCompare. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The file name without its extension. */
export function stemOf(name: string): string {
  return path.basename(name, path.extname(name));
}

export async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isDirectory();
  } catch {
    return false;
  }
}

export async function isFile(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isFile();
  } catch {
    return false;
  }
}

async function entries(dir: string): Promise<import('fs').Dirent[]> {
  try {
    return await fs.readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw new HgadError('IO', `Cannot list the folder ${dir}: ${(e as Error).message}`, 'root');
  }
}

// A symbolic link counts as what it points to: datasets are often assembled from links.
async function kindOf(dir: string, entry: import('fs').Dirent): Promise<'file' | 'dir' | 'other'> {
  if (entry.isFile()) return 'file';
  if (entry.isDirectory()) return 'dir';
  if (entry.isSymbolicLink()) {
    try {
      const s = await fs.stat(path.join(dir, entry.name));
      return s.isFile() ? 'file' : s.isDirectory() ? 'dir' : 'other';
    } catch {
      return 'other';
    }
  }
  return 'other';
}

/** Names of the sub-folders of `dir` (hidden ones skipped), sorted. */
export async function listDirs(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await entries(dir)) {
    if (!e.name.startsWith('.') && (await kindOf(dir, e)) === 'dir') out.push(e.name);
  }
  return out.sort(compareNames);
}

/** Absolute paths of the image files directly in `dir` (hidden ones skipped), sorted by name. */
export async function listImages(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await entries(dir)) {
    if (!e.name.startsWith('.') && isImageName(e.name) && (await kindOf(dir, e)) === 'file') out.push(e.name);
  }
  return out.sort(compareNames).map((name) => path.join(dir, name));
}

/**
 * The images of `dir` keyed by file name with the extension lower-cased, so that a lookup of
 * `000_mask.png` also finds `000_mask.PNG`. Empty when the folder does not exist.
 */
export async function indexImages(dir: string): Promise<Map<string, string>> {
  const index = new Map<string, string>();
  if (!(await isDirectory(dir))) return index;
  for (const p of await listImages(dir)) {
    const name = path.basename(p);
    index.set(stemOf(name) + path.extname(name).toLowerCase(), p);
  }
  return index;
}

/** The first of `names` present in `index` (see indexImages), or null. */
export function findIn(index: Map<string, string>, names: readonly string[]): string | null {
  for (const n of names) {
    const hit = index.get(n);
    if (hit !== undefined) return hit;
  }
  return null;
}
