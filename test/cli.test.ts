// The command line end to end on a small generated dataset with the demo backbone: train, score
// (JSON and CSV, heatmaps), eval (Markdown, JSON, HTML report), help, and errors that name the bad
// argument with a non-zero exit code.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import sharp from 'sharp';

import { generateDemoDataset } from '../lib/demo';
import { hgad } from './run-cli';

let dir: string;
let data: string;
let model: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hgad-cli-'));
  data = join(dir, 'data');
  await generateDemoDataset({ root: data, seed: 2, classes: ['wood', 'nut'], trainPerClass: 8, testGoodPerClass: 2, testDefectPerClass: 3 });
  model = join(dir, 'model.hgad');
  const r = await hgad('train', '--data', data, '--backbone', 'demo', '--out', model, '--epochs', '4', '--passes', '2', '--lr', '1e-3',
    '--batch-size', '4', '--coupling-layers', '2', '--centers', '2', '--threads', '2', '--holdout', '0.25');
  if (r.code !== 0) throw new Error(`hgad train failed: ${r.stderr}`);
}, 300000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('hgad CLI', () => {
  test('train writes a detector and says what it trained', async () => {
    expect(existsSync(model)).toBe(true);
    const again = await hgad('train', '--data', data, '--backbone', 'demo', '--out', join(dir, 'm2.hgad'), '--epochs', '1',
      '--passes', '1', '--batch-size', '4', '--coupling-layers', '1', '--classes', 'nut', '--threads', '2');
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/classes: nut;/);
  }, 120000);

  test('score prints JSON for a folder, with inferred classes, and writes CSV and heatmaps', async () => {
    const json = await hgad('score', '--model', model, join(data, 'nut', 'test'), '--threads', '2');
    expect(json.code).toBe(0);
    const results = JSON.parse(json.stdout) as { path: string; imageScore: number; isAnomaly: boolean; className: string; classSource: string }[];
    expect(results).toHaveLength(5); // 2 good + 3 defective, found recursively
    expect(results.every((r) => r.classSource === 'inferred' && typeof r.isAnomaly === 'boolean' && Number.isFinite(r.imageScore))).toBe(true);
    expect(results.filter((r) => r.className === 'nut').length).toBeGreaterThanOrEqual(4);

    const csv = join(dir, 'scores.csv');
    const heat = join(dir, 'heat');
    const one = join(data, 'wood', 'test', 'good', '000.png');
    const r = await hgad('score', '--model', model, '--format', 'csv', '--out', csv, '--heatmaps', heat, '--class', 'wood', one);
    expect(r.code).toBe(0);
    const lines = (await readFile(csv, 'utf8')).trim().split('\n');
    expect(lines[0]).toBe('path,imageScore,isAnomaly,threshold,className,classConfidence,classSource,thresholdSource,errorCode,error');
    expect(lines[1]).toMatch(/,wood,[0-9.]+,given,calibration,,$/);
    expect((await sharp(join(heat, '000_heatmap.png')).metadata()).width).toBe(256);
    expect((await sharp(join(heat, '000_overlay.png')).metadata()).height).toBe(256);
  }, 120000);

  test('eval prints the metrics table and writes JSON and the HTML report', async () => {
    const json = join(dir, 'metrics.json');
    const html = join(dir, 'report.html');
    const r = await hgad('eval', '--model', model, '--data', data, '--json', json, '--report', html, '--threads', '2');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\| Class \| Images \| Anomalous \| Image AUROC \| Pixel AUROC \| AUPRO@30% \| F1-max \|/);
    expect(r.stdout).toMatch(/\| wood \| 5 \| 3 \|/);
    const metrics = JSON.parse(await readFile(json, 'utf8')) as { classes: { className: string; imageAuroc: number }[] };
    expect(metrics.classes.map((c) => c.className).sort()).toEqual(['nut', 'wood']);
    expect(metrics.classes.every((c) => c.imageAuroc >= 0 && c.imageAuroc <= 1)).toBe(true);
    expect(await readFile(html, 'utf8')).toMatch(/<html/);
  }, 120000);

  test('demo generates its data, trains, evaluates and writes metrics and heatmaps (shortened schedule)', async () => {
    const out = join(dir, 'demo');
    const r = await hgad('demo', '--out', out, '--epochs', '1', '--passes', '1', '--threads', '2');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\[1\/4\] dataset: /);
    expect(r.stdout).toMatch(/\| \*\*mean\*\* \| 175 \| 100 \|/);
    const metrics = JSON.parse(await readFile(join(out, 'metrics.json'), 'utf8')) as { demo: boolean; classes: unknown[]; classAccuracy: number };
    expect(metrics.demo).toBe(true);
    expect(metrics.classes).toHaveLength(5);
    expect(metrics.classAccuracy).toBeGreaterThan(0.5);
    expect(existsSync(join(out, 'model.hgad'))).toBe(true);
    expect((await sharp(join(out, 'heatmaps', 'pill', 'spot', '000_overlay.png')).metadata()).width).toBe(256);
  }, 600000);

  test('help for every command, and the version', async () => {
    for (const cmd of ['train', 'score', 'eval', 'demo']) {
      const r = await hgad(cmd, '--help');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: hgad ${cmd}`));
    }
    const top = await hgad('--help');
    expect(top.stdout).toMatch(/Commands\n {2}demo/);
    expect((await hgad('--version')).stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  test('bad arguments name the argument and exit with 2; failures exit with 1', async () => {
    const unknown = await hgad('score', '--model', model, '--colour', 'red', data);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/--colour/);
    const epochs = await hgad('train', '--data', data, '--out', join(dir, 'x.hgad'), '--epochs', 'many');
    expect(epochs.code).toBe(2);
    expect(epochs.stderr).toMatch(/--epochs/);
    const noModel = await hgad('score', join(data, 'nut'));
    expect(noModel.code).toBe(2);
    expect(noModel.stderr).toMatch(/--model/);
    const cls = await hgad('score', '--model', model, '--class', 'bolt', join(data, 'nut'));
    expect(cls.code).toBe(2);
    expect(cls.stderr).toMatch(/options\.className.*bolt/);
    const notModel = await hgad('score', '--model', join(data, 'nut', 'train', 'good', '000.png'), join(data, 'nut'));
    expect(notModel.code).toBe(1);
    expect(notModel.stderr).toMatch(/MODEL_FILE|not an hgad/i);
    const command = await hgad('frobnicate');
    expect(command.code).toBe(2);
    expect(command.stderr).toMatch(/unknown command "frobnicate"/);
  }, 60000);

  const bin = resolve(__dirname, '..', 'dist', 'lib', 'cli', 'main.js');
  (existsSync(bin) ? test : test.skip)('the compiled bin runs as a program', () => {
    const r = spawnSync(process.execPath, [bin, 'score', '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage: hgad score/);
  });
});
