// Defect geometry. Each defect is drawn twice from the same numbers: once in colour over the normal
// image and once in white on black for the ground-truth mask, so the mask is exactly where it was drawn.
import type { Rng } from './prng';
import { BACKGROUND_ID, OBJECT_CLIP_ID, type DefectKind, type Scene } from './scene';
import { VIEW, blobPath, n, polyline, smoothOpen, type Point } from './svg';

export interface DefectDrawing {
  /** Extra <defs> content (clip paths) used by both drawings. */
  defs: string;
  /** Drawn over the normal image, before the overlay. */
  image: string;
  /** Drawn in white over a black frame. */
  mask: string;
}

/** How much wider than the drawn stroke a thin defect's mask is: annotators outline a scratch generously. */
const STROKE_MARGIN = 3;

function blobRadii(rng: Rng, radius: number, count: number, roughness: number): number[] {
  const radii: number[] = [];
  for (let i = 0; i < count; i++) radii.push(radius * rng.range(1 - roughness, 1 + roughness));
  return radii;
}

/** A direction roughly toward the frame's centre, so a long defect mostly stays on the surface. */
function towardCentre(from: Point, rng: Rng): number {
  return Math.atan2(VIEW / 2 - from[1], VIEW / 2 - from[0]) + rng.range(-1.2, 1.2);
}

function onSurface(scene: Scene, body: string): string {
  return scene.object ? `<g clip-path="url(#${OBJECT_CLIP_ID})">${body}</g>` : body;
}

/** A thin curved stroke: a dark groove with a bright core where the light catches its edge. */
function scratch(scene: Scene, rng: Rng, scale: number): DefectDrawing {
  const start = scene.surfacePoint(rng);
  const length = rng.range(55, 100) * scale;
  let angle = towardCentre(start, rng);
  const bend = rng.range(-0.35, 0.35);
  const pts: Point[] = [start];
  const steps = 5;
  for (let i = 0; i < steps; i++) {
    angle += bend + rng.range(-0.1, 0.1);
    const last = pts[pts.length - 1] as Point;
    pts.push([last[0] + (length / steps) * Math.cos(angle), last[1] + (length / steps) * Math.sin(angle)]);
  }
  const d = smoothOpen(pts);
  const w = rng.range(1.8, 2.8) * Math.sqrt(scale);
  const { color, core } = scene.style.scratch;
  const image = onSurface(scene,
    `<path d="${d}" fill="none" stroke="${color}" stroke-width="${n(w + 1)}" stroke-linecap="round" opacity="0.9"/>` +
    `<path d="${d}" fill="none" stroke="${core}" stroke-width="${n(w * 0.55)}" stroke-linecap="round"/>`);
  const mask = onSurface(scene,
    `<path d="${d}" fill="none" stroke="#fff" stroke-width="${n(w + 1 + STROKE_MARGIN)}" stroke-linecap="round"/>`);
  return { defs: '', image, mask };
}

/** A stain or contamination: an irregular blob of another colour with a darker core. */
function spot(scene: Scene, rng: Rng, scale: number): DefectDrawing {
  const [cx, cy] = scene.surfacePoint(rng);
  const r = rng.range(8, 18) * scale;
  const rot = rng.range(0, Math.PI);
  const outer = blobPath(cx, cy, blobRadii(rng, r, 9, 0.3), rot);
  const inner = blobPath(cx + rng.range(-0.2, 0.2) * r, cy + rng.range(-0.2, 0.2) * r, blobRadii(rng, r * 0.5, 7, 0.3), rot);
  const color = rng.pick(scene.style.spot);
  const image = onSurface(scene,
    `<path d="${outer}" fill="${color}" opacity="0.85"/><path d="${inner}" fill="#000" opacity="0.25"/>`);
  const mask = onSurface(scene, `<path d="${outer}" fill="#fff"/>`);
  return { defs: '', image, mask };
}

/** A piece cut out: the background shows through, with a dark rim where the material broke. */
function missing(scene: Scene, rng: Rng, scale: number, id: string): DefectDrawing {
  const [cx, cy] = scene.cutPoint(rng);
  const r = rng.range(scene.object ? 13 : 8, scene.object ? 22 : 16) * scale;
  const d = blobPath(cx, cy, blobRadii(rng, r, 8, 0.35), rng.range(0, Math.PI));
  const defs = `<clipPath id="${id}"><path d="${d}"/></clipPath>`;
  const image = onSurface(scene,
    `<g clip-path="url(#${id})"><use xlink:href="#${BACKGROUND_ID}"/>` +
    `<path d="${d}" fill="none" stroke="${scene.style.rim}" stroke-width="3" opacity="0.7"/></g>`);
  const mask = onSurface(scene, `<path d="${d}" fill="#fff"/>`);
  return { defs, image, mask };
}

/** A crack: a jagged random walk with one side branch. */
function crack(scene: Scene, rng: Rng, scale: number): DefectDrawing {
  const walk = (from: Point, heading: number, length: number): Point[] => {
    const pts: Point[] = [from];
    let travelled = 0, a = heading;
    while (travelled < length) {
      const step = rng.range(3, 6);
      a += rng.range(-0.6, 0.6);
      a = heading + Math.max(-0.7, Math.min(0.7, a - heading)); // keep the crack going one way
      const last = pts[pts.length - 1] as Point;
      pts.push([last[0] + step * Math.cos(a), last[1] + step * Math.sin(a)]);
      travelled += step;
    }
    return pts;
  };
  const start = scene.surfacePoint(rng);
  const heading = towardCentre(start, rng);
  const main = walk(start, heading, rng.range(50, 90) * scale);
  const fork = main[Math.floor(main.length / 2)] as Point;
  const branch = walk(fork, heading + rng.sign() * rng.range(0.5, 0.9), rng.range(15, 30) * scale);
  const paths = [polyline(main), polyline(branch)];
  const w = rng.range(1.5, 2.2);
  const stroke = (color: string, width: number, extra = ''): string =>
    paths.map((d) => `<path d="${d}" fill="none" stroke="${color}" stroke-width="${n(width)}" stroke-linecap="round" stroke-linejoin="round"${extra}/>`).join('');
  const image = onSurface(scene, stroke('#000', w + 1.5, ' opacity="0.25"') + stroke(scene.style.crack, w));
  const mask = onSurface(scene, stroke('#fff', w + 1.5 + STROKE_MARGIN));
  return { defs: '', image, mask };
}

/**
 * Draws one defect. `scale` grows or shrinks it (the renderer retries with another scale when the mask
 * area falls outside the allowed range); every call draws new geometry from rng.
 */
export function drawDefect(kind: DefectKind, scene: Scene, rng: Rng, scale: number): DefectDrawing {
  switch (kind) {
    case 'scratch': return scratch(scene, rng, scale);
    case 'spot': return spot(scene, rng, scale);
    case 'missing': return missing(scene, rng, scale, 'cut');
    case 'crack': return crack(scene, rng, scale);
  }
}
