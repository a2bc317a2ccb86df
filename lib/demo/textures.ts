// Texture classes: the surface fills the frame, so a defect may sit anywhere.
import type { Rng } from './prng';
import { type DemoClassSpec, type Scene } from './scene';
import { VIEW, grain, n, type Point } from './svg';

type Rgb = readonly [number, number, number];

function hex(c: Rgb): string {
  return `#${c.map((v) => Math.max(0, Math.min(255, Math.round(v))).toString(16).padStart(2, '0')).join('')}`;
}

function jitter(rng: Rng, c: Rgb, amount: number): Rgb {
  return [c[0] + rng.range(-amount, amount), c[1] + rng.range(-amount, amount), c[2] + rng.range(-amount, amount)];
}

/**
 * feColorMatrix rows that map the noise value t (red channel of feTurbulence, roughly in [lo, hi]) onto
 * the colour ramp dark..light, with opaque alpha.
 */
function rampMatrix(dark: Rgb, light: Rgb, lo: number, hi: number): string {
  const rows: string[] = [];
  for (let c = 0; c < 3; c++) {
    const a = ((light[c] ?? 0) - (dark[c] ?? 0)) / 255 / (hi - lo);
    const b = (dark[c] ?? 0) / 255 - a * lo;
    rows.push(`${n(a)} 0 0 0 ${n(b)}`);
  }
  rows.push('0 0 0 0 1');
  return rows.join(' ');
}

const margin = 14;
function anywhere(rng: Rng): Point {
  return [rng.range(margin, VIEW - margin), rng.range(margin, VIEW - margin)];
}

function exposure(rng: Rng): { gain: number; offset: number } {
  return { gain: rng.range(0.9, 1.1), offset: rng.range(-8, 8) };
}

function texture(rng: Rng, defs: string, background: string, foreground: string, style: Scene['style']): Scene {
  const g = grain('grain', rng.turbulenceSeed(), 0.18);
  return {
    defs: defs + g.defs,
    background,
    foreground,
    overlay: g.body,
    object: false,
    surfacePoint: anywhere,
    cutPoint: anywhere,
    style,
    ...exposure(rng),
  };
}

const full = `width="${VIEW}" height="${VIEW}"`;
// Oversized so the rotated or shifted surface still covers the frame.
const over = `x="-40" y="-40" width="${VIEW + 80}" height="${VIEW + 80}"`;

/** A woven carpet: a basket-weave pattern of shaded threads with slow colour drift and fibre noise. */
export const carpet: DemoClassSpec = {
  name: 'carpet',
  kind: 'texture',
  defects: ['spot', 'missing', 'scratch'],
  scene(rng) {
    const base = jitter(rng, [128, 112, 92], 8);
    const dark: Rgb = [base[0] * 0.45, base[1] * 0.45, base[2] * 0.45];
    const light: Rgb = [base[0] * 1.35, base[1] * 1.35, base[2] * 1.3];
    const cell = rng.range(9, 10.5);
    const h = cell / 2;
    const angle = rng.range(-4, 4);
    const thread = (id: string, x2: number, y2: number): string =>
      `<linearGradient id="${id}" x1="0" y1="0" x2="${x2}" y2="${y2}"><stop offset="0" stop-color="${hex(dark)}"/>` +
      `<stop offset="0.5" stop-color="${hex(light)}"/><stop offset="1" stop-color="${hex(dark)}"/></linearGradient>`;
    const t = 0.08 * cell, w = 0.84 * h, r = 0.3 * h;
    const defs =
      thread('th', 0, 1) + thread('tv', 1, 0) +
      `<pattern id="weave" width="${n(cell)}" height="${n(cell)}" patternUnits="userSpaceOnUse" ` +
      `patternTransform="rotate(${n(angle)} 128 128) translate(${n(rng.range(0, cell))} ${n(rng.range(0, cell))})">` +
      `<rect width="${n(cell)}" height="${n(cell)}" fill="${hex(dark)}"/>` +
      `<rect x="0" y="${n(t)}" width="${n(h)}" height="${n(w)}" rx="${n(r)}" fill="url(#th)"/>` +
      `<rect x="${n(h)}" y="${n(h + t)}" width="${n(h)}" height="${n(w)}" rx="${n(r)}" fill="url(#th)"/>` +
      `<rect x="${n(h + t)}" y="0" width="${n(w)}" height="${n(h)}" rx="${n(r)}" fill="url(#tv)"/>` +
      `<rect x="${n(t)}" y="${n(h)}" width="${n(w)}" height="${n(h)}" rx="${n(r)}" fill="url(#tv)"/>` +
      '</pattern>' +
      '<filter id="drift" x="0" y="0" width="1" height="1" color-interpolation-filters="sRGB">' +
      `<feTurbulence type="fractalNoise" baseFrequency="0.02" numOctaves="2" seed="${rng.turbulenceSeed()}"/>` +
      '<feColorMatrix type="matrix" values="0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1.6 0 0 0 -0.55"/></filter>' +
      '<filter id="fibre" x="0" y="0" width="1" height="1" color-interpolation-filters="sRGB">' +
      `<feTurbulence type="turbulence" baseFrequency="0.45" numOctaves="2" seed="${rng.turbulenceSeed()}"/>` +
      '<feColorMatrix type="matrix" values="0 0 0 0 1 0 0 0 0 0.95 0 0 0 0 0.85 1.2 0 0 0 -0.15"/></filter>';
    const background =
      `<rect ${full} fill="#17130f"/>` +
      `<rect ${full} fill="url(#weave)" opacity="0.18"/>`;
    const foreground =
      `<rect ${full} fill="url(#weave)"/>` +
      `<rect ${full} filter="url(#drift)" opacity="0.45"/>` +
      `<rect ${full} filter="url(#fibre)" opacity="0.22"/>`;
    return texture(rng, defs, background, foreground, {
      scratch: { color: hex([base[0] * 1.7, base[1] * 1.65, base[2] * 1.5]), core: '#f4ead8' },
      spot: ['#6b2a1c', '#3b3f5a', '#2a2622', '#8a6a1e'],
      crack: '#120e0a',
      rim: '#0a0806',
    });
  },
};

/** Wood: anisotropic noise stretched along the grain, mapped onto a brown ramp, with darker fibre streaks. */
export const wood: DemoClassSpec = {
  name: 'wood',
  kind: 'texture',
  defects: ['scratch', 'spot', 'crack'],
  scene(rng) {
    const light = jitter(rng, [196, 150, 102], 10);
    const dark: Rgb = [light[0] * 0.58, light[1] * 0.52, light[2] * 0.45];
    const angle = rng.range(-3, 3);
    const fx = rng.range(0.035, 0.05);
    const defs =
      '<filter id="grainwood" x="0" y="0" width="1" height="1" color-interpolation-filters="sRGB">' +
      `<feTurbulence type="fractalNoise" baseFrequency="${n(fx)} 0.004" numOctaves="3" seed="${rng.turbulenceSeed()}" result="t"/>` +
      `<feColorMatrix in="t" type="matrix" values="${rampMatrix(dark, light, 0.3, 0.7)}" result="c"/>` +
      `<feTurbulence type="fractalNoise" baseFrequency="0.5 0.012" numOctaves="2" seed="${rng.turbulenceSeed()}" result="s"/>` +
      '<feColorMatrix in="s" type="matrix" result="m" values="0.7 0 0 0 0.5 0.7 0 0 0 0.5 0.7 0 0 0 0.5 0 0 0 0 1"/>' +
      '<feBlend in="c" in2="m" mode="multiply"/></filter>';
    const background = `<rect ${full} fill="#2b1d12"/>`;
    const foreground =
      `<g transform="rotate(${n(angle)} 128 128)"><rect ${over} filter="url(#grainwood)"/></g>`;
    return texture(rng, defs, background, foreground, {
      scratch: { color: hex([light[0] * 1.2, light[1] * 1.22, light[2] * 1.25]), core: '#fbeedd' },
      spot: ['#241a14', '#5b5e66', '#1f2a22', '#8a2a1a'],
      crack: '#1a0f07',
      rim: '#140c06',
    });
  },
};

/** Tile: a mottled grey base with clustered dark and light speckles and faint marble veins. */
export const tile: DemoClassSpec = {
  name: 'tile',
  kind: 'texture',
  defects: ['crack', 'spot', 'missing'],
  scene(rng) {
    const light = jitter(rng, [196, 192, 184], 6);
    const dark: Rgb = [light[0] * 0.78, light[1] * 0.78, light[2] * 0.8];
    const defs =
      '<filter id="mottle" x="0" y="0" width="1" height="1" color-interpolation-filters="sRGB">' +
      `<feTurbulence type="fractalNoise" baseFrequency="0.03" numOctaves="4" seed="${rng.turbulenceSeed()}"/>` +
      `<feColorMatrix type="matrix" values="${rampMatrix(dark, light, 0.3, 0.7)}"/></filter>` +
      // Speckles: only the top tail of a high-frequency noise becomes opaque.
      '<filter id="speckD" x="0" y="0" width="1" height="1" color-interpolation-filters="sRGB">' +
      `<feTurbulence type="fractalNoise" baseFrequency="0.14" numOctaves="3" seed="${rng.turbulenceSeed()}"/>` +
      '<feColorMatrix type="matrix" values="0 0 0 0 0.3 0 0 0 0 0.29 0 0 0 0 0.28 7 0 0 0 -4.2"/></filter>' +
      '<filter id="speckL" x="0" y="0" width="1" height="1" color-interpolation-filters="sRGB">' +
      `<feTurbulence type="fractalNoise" baseFrequency="0.3" numOctaves="2" seed="${rng.turbulenceSeed()}"/>` +
      '<feColorMatrix type="matrix" values="0 0 0 0 0.97 0 0 0 0 0.96 0 0 0 0 0.94 6 0 0 0 -3.5"/></filter>' +
      '<filter id="vein" x="0" y="0" width="1" height="1" color-interpolation-filters="sRGB">' +
      `<feTurbulence type="turbulence" baseFrequency="0.012" numOctaves="3" seed="${rng.turbulenceSeed()}"/>` +
      '<feColorMatrix type="matrix" values="0 0 0 0 0.35 0 0 0 0 0.34 0 0 0 0 0.33 -9 0 0 0 1.2"/></filter>';
    const background = `<rect ${full} fill="#2e2c2a"/>`;
    const foreground =
      `<rect ${full} filter="url(#mottle)"/>` +
      `<rect ${full} filter="url(#vein)" opacity="0.35"/>` +
      `<rect ${full} filter="url(#speckD)"/>` +
      `<rect ${full} filter="url(#speckL)"/>`;
    return texture(rng, defs, background, foreground, {
      scratch: { color: '#5a5752', core: '#eeeeea' },
      spot: ['#7a4a22', '#3c4a6a', '#5e2a2a', '#4a4a3a'],
      crack: '#24221f',
      rim: '#1a1816',
    });
  },
};
