// Object classes: one part on a background, with a little pose jitter. Defects are clipped to the part's
// silhouette (OBJECT_CLIP_ID) and a missing piece is cut from its outline.
import type { Rng } from './prng';
import { OBJECT_CLIP_ID, type DemoClassSpec, type Scene } from './scene';
import { VIEW, grain, n, polyline, type Point } from './svg';

const full = `width="${VIEW}" height="${VIEW}"`;

interface Pose {
  cx: number;
  cy: number;
  angle: number; // degrees
}

function pose(rng: Rng, shift: number, maxAngle: number): Pose {
  return { cx: 128 + rng.range(-shift, shift), cy: 128 + rng.range(-shift, shift), angle: rng.range(-maxAngle, maxAngle) };
}

function place(p: Pose, local: Point): Point {
  const a = (p.angle * Math.PI) / 180;
  const c = Math.cos(a), s = Math.sin(a);
  return [p.cx + c * local[0] - s * local[1], p.cy + s * local[0] + c * local[1]];
}

function transform(p: Pose): string {
  return `translate(${n(p.cx)} ${n(p.cy)}) rotate(${n(p.angle)})`;
}

function finish(rng: Rng, s: Omit<Scene, 'overlay' | 'gain' | 'offset' | 'object' | 'defs'> & { defs: string }): Scene {
  const g = grain('grain', rng.turbulenceSeed(), 0.14);
  return { ...s, defs: s.defs + g.defs, overlay: g.body, object: true, gain: rng.range(0.92, 1.08), offset: rng.range(-6, 6) };
}

/** A table top: a dark surface with slow uneven lighting. */
function table(rng: Rng, color: string, light: number): { defs: string; body: string } {
  return {
    defs: '<filter id="table" x="0" y="0" width="1" height="1" color-interpolation-filters="sRGB">' +
      `<feTurbulence type="fractalNoise" baseFrequency="0.012" numOctaves="3" seed="${rng.turbulenceSeed()}"/>` +
      `<feColorMatrix type="matrix" values="0 0 0 0 1 0 0 0 0 1 0 0 0 0 1 ${n(2 * light)} 0 0 0 ${n(-0.9 * light)}"/></filter>` +
      `<radialGradient id="vignette" cx="${n(rng.range(0.4, 0.6))}" cy="${n(rng.range(0.4, 0.6))}" r="0.75">` +
      '<stop offset="0.5" stop-color="#000" stop-opacity="0"/><stop offset="1" stop-color="#000" stop-opacity="0.45"/></radialGradient>',
    body: `<rect ${full} fill="${color}"/><rect ${full} filter="url(#table)"/><rect ${full} fill="url(#vignette)"/>`,
  };
}

/** A soft shadow of a silhouette, offset down-right as from a light at the top left. */
function shadow(shape: string, p: Pose): { defs: string; body: string } {
  return {
    defs: '<filter id="shadow" x="-0.3" y="-0.3" width="1.6" height="1.6"><feGaussianBlur stdDeviation="5"/></filter>',
    body: `<g transform="translate(5 7)" filter="url(#shadow)" opacity="0.7"><g transform="${transform(p)}">${shape}</g></g>`,
  };
}

/** A capsule-shaped tablet: off-white with red specks and an embossed print, on a dark table. */
export const pill: DemoClassSpec = {
  name: 'pill',
  kind: 'object',
  defects: ['crack', 'spot', 'missing'],
  scene(rng) {
    const p = pose(rng, 6, 6);
    const rx = rng.range(86, 90), ry = rng.range(40, 43);
    const rect = `x="${n(-rx)}" y="${n(-ry)}" width="${n(2 * rx)}" height="${n(2 * ry)}" rx="${n(ry)}"`;
    const shape = `<rect ${rect}/>`;
    const t = table(rng, '#24272b', 0.35);
    const sh = shadow(`<g fill="#000">${shape}</g>`, p);
    // The print: "HG" in strokes, so no font is needed and every machine draws the same pixels.
    const glyphs = [
      polyline([[-22, -11], [-22, 11]]), polyline([[-8, -11], [-8, 11]]), polyline([[-22, 0], [-8, 0]]),
      'M20,-7C16,-13 3,-12 3,0C3,12 16,13 20,6L20,1L13,1',
    ].map((d) => `<path d="${d}"/>`).join('');
    const printShift = rng.range(-2, 2);
    const defs = t.defs + sh.defs +
      `<clipPath id="${OBJECT_CLIP_ID}"><rect transform="${transform(p)}" ${rect}/></clipPath>` +
      '<radialGradient id="body" cx="0.42" cy="0.38" r="0.7">' +
      '<stop offset="0" stop-color="#fbf8f1"/><stop offset="0.7" stop-color="#e6e0d3"/><stop offset="1" stop-color="#b3ab9c"/></radialGradient>' +
      '<filter id="specks" x="0" y="0" width="1" height="1" color-interpolation-filters="sRGB">' +
      `<feTurbulence type="fractalNoise" baseFrequency="0.28" numOctaves="2" seed="${rng.turbulenceSeed()}"/>` +
      '<feColorMatrix type="matrix" values="0 0 0 0 0.72 0 0 0 0 0.2 0 0 0 0 0.16 7 0 0 0 -4.3"/></filter>';
    const foreground =
      `<g transform="${transform(p)}"><g fill="url(#body)">${shape}</g></g>` +
      `<g clip-path="url(#${OBJECT_CLIP_ID})"><rect ${full} filter="url(#specks)"/></g>` +
      `<g transform="${transform(p)} translate(${n(printShift)} 0)" fill="none" stroke="#7c2b25" stroke-width="3.2" ` +
      `stroke-linecap="round" stroke-linejoin="round" opacity="0.85">${glyphs}</g>`;
    return finish(rng, {
      defs,
      background: t.body,
      // The shadow is not background: a hole through the part shows the lit table.
      foreground: sh.body + foreground,
      surfacePoint: (r) => place(p, [r.range(-0.75, 0.75) * rx, r.range(-0.6, 0.6) * ry]),
      cutPoint: (r) => {
        // On the outline: the straight sides or the round ends of the capsule.
        const u = r.float();
        if (u < 0.5) return place(p, [r.range(-(rx - ry), rx - ry), r.sign() * ry]);
        const a = r.range(-Math.PI / 2, Math.PI / 2);
        const side = r.sign();
        return place(p, [side * (rx - ry + ry * Math.cos(a)), ry * Math.sin(a)]);
      },
      style: {
        scratch: { color: '#8d8577', core: '#ffffff' },
        spot: ['#6b4a2a', '#3a3a3a', '#8a6d2a', '#a03a2a'],
        crack: '#4a4238',
        rim: '#2a2520',
      },
    });
  },
};

/** A hexagon nut seen from above: brushed metal, a chamfer ring and a threaded hole showing the table. */
export const nut: DemoClassSpec = {
  name: 'nut',
  kind: 'object',
  defects: ['scratch', 'spot', 'missing'],
  scene(rng) {
    const p = pose(rng, 6, 12);
    const R = rng.range(92, 96), hole = rng.range(34, 36), chamfer = R * 0.86;
    const hexPts: Point[] = [];
    for (let i = 0; i < 6; i++) hexPts.push([R * Math.cos((i * Math.PI) / 3), R * Math.sin((i * Math.PI) / 3)]);
    const circle = (r: number): string => `M${n(r)},0A${n(r)},${n(r)} 0 1 0 ${n(-r)},0A${n(r)},${n(r)} 0 1 0 ${n(r)},0Z`;
    const solid = `${polyline(hexPts)}Z${circle(hole)}`;
    const t = table(rng, '#3a4048', 0.3);
    const sh = shadow(`<path d="${solid}" fill-rule="evenodd" fill="#000"/>`, p);
    const defs = t.defs + sh.defs +
      `<clipPath id="${OBJECT_CLIP_ID}"><path transform="${transform(p)}" d="${solid}" clip-rule="evenodd"/></clipPath>` +
      '<linearGradient id="metal" x1="0" y1="0" x2="1" y2="1">' +
      '<stop offset="0" stop-color="#d9dde2"/><stop offset="0.5" stop-color="#9aa1a9"/><stop offset="1" stop-color="#5f666e"/></linearGradient>' +
      '<radialGradient id="bevel" r="0.5"><stop offset="0.8" stop-color="#fff" stop-opacity="0"/>' +
      '<stop offset="0.93" stop-color="#fff" stop-opacity="0.35"/><stop offset="1" stop-color="#000" stop-opacity="0.25"/></radialGradient>' +
      '<filter id="brushed" x="0" y="0" width="1" height="1" color-interpolation-filters="sRGB">' +
      `<feTurbulence type="fractalNoise" baseFrequency="0.6 0.015" numOctaves="2" seed="${rng.turbulenceSeed()}"/>` +
      '<feColorMatrix type="matrix" values="1.4 0 0 0 -0.2 1.4 0 0 0 -0.2 1.4 0 0 0 -0.2 0 0 0 0 1"/></filter>';
    const brushAngle = rng.range(0, 180);
    const foreground =
      `<g transform="${transform(p)}"><path d="${solid}" fill-rule="evenodd" fill="url(#metal)"/></g>` +
      `<g clip-path="url(#${OBJECT_CLIP_ID})">` +
      `<g transform="rotate(${n(brushAngle)} 128 128)"><rect x="-60" y="-60" width="376" height="376" filter="url(#brushed)" opacity="0.22"/></g>` +
      `<g transform="${transform(p)}"><circle r="${n(chamfer)}" fill="url(#bevel)"/>` +
      // The thread: dark rings just inside the hole edge, seen at a slight angle.
      `<circle r="${n(hole + 1)}" fill="none" stroke="#30353b" stroke-width="3"/>` +
      `<circle r="${n(hole + 4.5)}" fill="none" stroke="#5a6068" stroke-width="2" stroke-dasharray="3 2"/>` +
      `<circle r="${n(chamfer)}" fill="none" stroke="#f2f4f6" stroke-width="1.5" opacity="0.6"/></g></g>`;
    const ring = (r: Rng): Point => {
      const a = r.range(0, 2 * Math.PI), rad = r.range(hole + 10, chamfer - 6);
      return place(p, [rad * Math.cos(a), rad * Math.sin(a)]);
    };
    return finish(rng, {
      defs,
      background: t.body,
      // The shadow is not background: a hole through the part shows the lit table.
      foreground: sh.body + foreground,
      surfacePoint: ring,
      cutPoint: (r) => {
        // On the hexagon's outline: distance from the centre along angle a.
        const a = r.range(0, 2 * Math.PI);
        const local = ((a % (Math.PI / 3)) + Math.PI / 3) % (Math.PI / 3) - Math.PI / 6;
        const d = (R * Math.cos(Math.PI / 6)) / Math.cos(local);
        return place(p, [d * Math.cos(a), d * Math.sin(a)]);
      },
      style: {
        scratch: { color: '#4a4f55', core: '#f6f8fa' },
        spot: ['#7a3e1a', '#2a2a2a', '#8a5a20', '#4a2a1a'],
        crack: '#1e2226',
        rim: '#1a1d20',
      },
    });
  },
};
