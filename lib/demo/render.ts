// Renders one sample of the demo dataset (image and mask) from its identity alone, so any sample can be
// regenerated on its own, with or without its defect.
import sharp from 'sharp';
import { HgadArgumentError, HgadError } from '../errors';
import { checkInteger } from '../validate';
import { DEMO_CLASS_SPECS } from './classes';
import { drawDefect, type DefectDrawing } from './defects';
import { Rng, hashString, mixSeed } from './prng';
import { BACKGROUND_ID, type DefectKind, type Scene } from './scene';
import { VIEW, document } from './svg';

/** Allowed defect area as a fraction of the image (mask pixels / all pixels). */
export const DEMO_DEFECT_AREA = Object.freeze({ min: 0.003, max: 0.05 });

export type DemoSplit = 'train' | 'test';

export interface DemoSampleSpec {
  className: string;
  split: DemoSplit;
  /** 'good' or one of the class's defects (train samples are always 'good'). */
  label: string;
  index: number;
  seed: number;
  size: number;
  /** Draw the defect (default true). false renders the very same image without it, for tests. */
  withDefect?: boolean;
}

export interface DemoSample {
  /** RGB PNG. */
  image: Buffer;
  /** 8-bit single-channel PNG, 0 or 255; null for good samples. */
  mask: Buffer | null;
  /** Fraction of the image the mask covers (0 for good samples). */
  area: number;
}

const MAX_TRIES = 12;

function sceneDocument(size: number, scene: Scene, defect: DefectDrawing | null): string {
  const body = `<g id="${BACKGROUND_ID}">${scene.background}</g>${scene.foreground}${defect ? defect.image : ''}${scene.overlay}`;
  return document(size, scene.defs + (defect ? defect.defs : ''), body);
}

function maskDocument(size: number, scene: Scene, defect: DefectDrawing): string {
  // The mask needs the scene's clip paths (and the background, which clip paths do not draw) only as defs.
  return document(size, scene.defs + defect.defs, `<rect width="${VIEW}" height="${VIEW}" fill="#000"/>${defect.mask}`);
}

async function renderMask(svg: string): Promise<{ png: Buffer; area: number }> {
  // Anti-aliased edges are cut at half coverage, so the mask is binary and follows the drawn outline.
  const binary = await sharp(Buffer.from(svg)).flatten({ background: '#000' }).greyscale().threshold(128)
    .toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  const { width, height } = binary.info;
  const raw = sharp(binary.data, { raw: { width, height, channels: 1 } });
  const stats = await raw.clone().stats();
  const mean = stats.channels[0]?.mean ?? 0;
  // Without b-w, sharp writes a one-band raw input as an RGB PNG.
  const png = await raw.toColourspace('b-w').png({ compressionLevel: 9 }).toBuffer();
  return { png, area: mean / 255 };
}

/** Renders one sample; the same spec always gives the same bytes. */
export async function renderDemoSample(spec: DemoSampleSpec): Promise<DemoSample> {
  if (typeof spec !== 'object' || spec === null) throw new HgadArgumentError('spec', 'an object { className, split, label, ... }', spec);
  const cls = DEMO_CLASS_SPECS.get(spec.className);
  if (cls === undefined) throw new HgadArgumentError('className', `one of ${[...DEMO_CLASS_SPECS.keys()].join(', ')}`, spec.className);
  if (spec.split !== 'train' && spec.split !== 'test') throw new HgadArgumentError('split', '"train" or "test"', spec.split);
  const isGood = spec.label === 'good';
  if (!isGood && (spec.split === 'train' || !(cls.defects as readonly string[]).includes(spec.label))) {
    const allowed = spec.split === 'train' ? '"good" (training images are defect-free)' : `"good" or one of ${cls.defects.join(', ')}`;
    throw new HgadArgumentError('label', allowed, spec.label);
  }
  checkInteger('index', spec.index, 0, 0xffffffff);
  checkInteger('seed', spec.seed, 0, 0xffffffff);
  checkInteger('size', spec.size, 16, 4096);
  // Two independent streams: the normal image must not change when the defect is left out.
  const key = mixSeed(spec.seed, hashString(spec.className), hashString(spec.split), hashString(spec.label), spec.index);
  const scene = cls.scene(new Rng(mixSeed(key, 1)));

  let defect: DefectDrawing | null = null;
  let mask: Buffer | null = null;
  let area = 0;
  if (!isGood) {
    const rng = new Rng(mixSeed(key, 2));
    let scale = 1;
    for (let attempt = 0; attempt < MAX_TRIES && mask === null; attempt++) {
      const drawing = drawDefect(spec.label as DefectKind, scene, rng, scale);
      const m = await renderMask(maskDocument(spec.size, scene, drawing));
      if (m.area >= DEMO_DEFECT_AREA.min && m.area <= DEMO_DEFECT_AREA.max) {
        defect = drawing;
        mask = m.png;
        area = m.area;
      } else {
        scale *= m.area < DEMO_DEFECT_AREA.min ? 1.25 : 0.8;
      }
    }
    if (mask === null) {
      // Not reached in practice: each retry rescales the defect by 1.25 or 0.8 and draws new geometry.
      throw new HgadError('NATIVE', `Could not place a ${spec.label} defect of the allowed size on ${spec.className} sample ${spec.index}`);
    }
  }
  const drawn = spec.withDefect === false ? null : defect;
  const image = await sharp(Buffer.from(sceneDocument(spec.size, scene, drawn)))
    .flatten({ background: '#000' })
    .linear(scene.gain, scene.offset)
    .png({ compressionLevel: 3 })
    .toBuffer();
  return { image, mask, area };
}
