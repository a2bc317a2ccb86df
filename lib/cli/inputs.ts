// Image files named on the command line: files as given, folders searched recursively, in name order.
import * as path from 'node:path';

import { isDirectory, isFile, listDirs, listImages } from '../data/files';
import { HgadArgumentError } from '../errors';

async function walk(dir: string, out: string[]): Promise<void> {
  out.push(...(await listImages(dir)));
  for (const sub of await listDirs(dir)) await walk(path.join(dir, sub), out);
}

export async function expandInputs(items: string[]): Promise<string[]> {
  if (items.length === 0) throw new HgadArgumentError('images', 'one or more image files or folders', items);
  const out: string[] = [];
  for (const item of items) {
    if (await isDirectory(item)) {
      const before = out.length;
      await walk(path.resolve(item), out);
      if (out.length === before) throw new HgadArgumentError('images', 'folders that contain images', item);
    } else if (await isFile(item)) {
      out.push(path.resolve(item));
    } else {
      throw new HgadArgumentError('images', 'existing image files or folders', item);
    }
  }
  return out;
}
