// VisA with its one-class split file <root>/split_csv/1cls.csv: columns object,split,label,image,mask;
// label 'normal' or 'anomaly'; image and mask paths relative to root (mask empty for normal images).
// VisA names no defect types in that file, so every anomalous image gets defect 'anomaly'.
import { promises as fs } from 'fs';
import * as path from 'path';
import { HgadError } from '../errors';
import { compareNames, isFile } from './files';
import { parseCsv } from './csv';
import { ClassData, Sample } from './types';

export const VISA_SPLIT_FILE = path.join('split_csv', '1cls.csv');
const COLUMNS = ['object', 'split', 'label', 'image', 'mask'] as const;

function rowError(file: string, line: number, problem: string): HgadError {
  return new HgadError('INVALID_ARGUMENT', `${file} row ${line}: ${problem}`, 'root');
}

// Split files come from many hands: check that every listed file is there before training starts.
async function checkExists(paths: string[], file: string): Promise<void> {
  const chunk = 64;
  for (let i = 0; i < paths.length; i += chunk) {
    const part = paths.slice(i, i + chunk);
    const found = await Promise.all(part.map(isFile));
    const missing = found.indexOf(false);
    if (missing >= 0) throw new HgadError('IO', `${part[missing]} (listed in ${file}) does not exist`, 'root');
  }
}

export async function readVisa(root: string, select: (all: string[]) => string[]): Promise<ClassData[]> {
  const file = path.join(root, VISA_SPLIT_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new HgadError('IO', `Cannot read the VisA split file ${file}: ${(e as Error).message}`, 'root');
  }
  const rows = parseCsv(text, file);
  const header = (rows[0] ?? []).map((h) => h.trim().toLowerCase());
  const at = COLUMNS.map((c) => header.indexOf(c));
  if (at.some((i) => i < 0)) {
    throw new HgadError('INVALID_ARGUMENT', `${file}: expected the columns ${COLUMNS.join(',')} but the header is ` +
      `"${(rows[0] ?? []).join(',')}"`, 'root');
  }
  const [oCol, sCol, lCol, iCol, mCol] = at as [number, number, number, number, number];

  const byClass = new Map<string, ClassData>();
  for (let r = 1; r < rows.length; r++) {
    const row = rows[r] as string[];
    const line = r + 1;
    const get = (i: number): string => (row[i] ?? '').trim();
    const className = get(oCol);
    const split = get(sCol);
    const label = get(lCol);
    if (className === '') throw rowError(file, line, 'the object column is empty');
    if (split !== 'train' && split !== 'test') throw rowError(file, line, `split must be train or test, not "${split}"`);
    if (label !== 'normal' && label !== 'anomaly') throw rowError(file, line, `label must be normal or anomaly, not "${label}"`);
    if (split === 'train' && label === 'anomaly') throw rowError(file, line, 'an anomalous image in the train split');
    if (get(iCol) === '') throw rowError(file, line, 'the image column is empty');
    const mask = get(mCol);
    const sample: Sample = {
      path: path.resolve(root, get(iCol)),
      className,
      split,
      defect: label === 'normal' ? 'good' : 'anomaly',
      label: label === 'normal' ? 0 : 1,
      maskPath: label === 'anomaly' && mask !== '' ? path.resolve(root, mask) : null,
    };
    let data = byClass.get(className);
    if (data === undefined) {
      data = { name: className, train: [], test: [] };
      byClass.set(className, data);
    }
    data[split].push(sample);
  }

  const chosen = select([...byClass.keys()].sort(compareNames));
  const out = chosen.map((c) => byClass.get(c) as ClassData);
  for (const data of out) {
    data.train.sort((a, b) => compareNames(a.path, b.path));
    data.test.sort((a, b) => compareNames(a.path, b.path));
    const paths = [...data.train, ...data.test].flatMap((s) => (s.maskPath ? [s.path, s.maskPath] : [s.path]));
    await checkExists(paths, file);
  }
  return out;
}
