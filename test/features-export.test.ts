/**
 * @jest-environment ./test/ort-environment.js
 */
// scripts/export_backbone.py -> Backbone: runs where /usr/bin/python3 has torch and torchvision, and says
// which module is missing elsewhere.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { Backbone } from '../lib/features/backbone';

const PY = '/usr/bin/python3';
const SCRIPT = path.resolve(__dirname, '../scripts/export_backbone.py');

function missingModule(): string | null {
  if (!existsSync(PY)) return PY;
  for (const m of ['torch', 'torchvision']) {
    if (spawnSync(PY, ['-c', `import ${m}`], { stdio: 'ignore' }).status !== 0) return m;
  }
  return null;
}

const missing = missingModule();
if (missing) console.log(`skipping the export_backbone.py test: ${PY} cannot import ${missing}`);
const maybe = missing ? test.skip : test;

maybe('a torchvision ResNet-18 (random weights) exported with two stages opens and runs in Backbone', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hgad-export-'));
  try {
    const out = path.join(dir, 'r18.onnx');
    const r = spawnSync(PY, [SCRIPT, '--model', 'torchvision:resnet18', '--stages', 'layer2,layer3', '--no-pretrained', '--out', out], { encoding: 'utf8' });
    expect(r.stderr + r.stdout).toContain('taps: layer2,layer3');
    expect(r.status).toBe(0);
    const bb = await Backbone.open({ model: out, taps: ['layer2', 'layer3'], inputSize: 192, threads: 2 });
    try {
      expect(bb.levels.map((l) => [l.tap, l.height, l.channels, l.stride])).toEqual([['layer2', 24, 128, 8], ['layer3', 12, 256, 16]]);
      const f = await bb.extract(new Uint8Array(2 * 192 * 192 * 3).fill(90), 2);
      expect(f[1]!.data.length).toBe(2 * 12 * 12 * 256);
    } finally {
      await bb.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
