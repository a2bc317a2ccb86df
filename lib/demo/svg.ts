// Small SVG-writing helpers shared by the class and defect renderers. All geometry is written in a fixed
// 256 x 256 user space (the viewBox), so one scene renders at any output size.

export const VIEW = 256;

export type Point = readonly [number, number];

/** Numbers with two decimals: short documents and the same text on every platform. */
export function n(v: number): string {
  const s = v.toFixed(2);
  return s === '-0.00' ? '0.00' : s;
}

export function pt(p: Point): string {
  return `${n(p[0])},${n(p[1])}`;
}

/** A closed smooth blob around (cx, cy): Catmull-Rom through points at the given polar radii. */
export function blobPath(cx: number, cy: number, radii: readonly number[], rotation = 0): string {
  const k = radii.length;
  const pts: Point[] = radii.map((r, i) => {
    const a = rotation + (2 * Math.PI * i) / k;
    return [cx + r * Math.cos(a), cy + r * Math.sin(a)];
  });
  return smoothClosed(pts);
}

function at(pts: readonly Point[], i: number): Point {
  const p = pts[((i % pts.length) + pts.length) % pts.length];
  if (p === undefined) throw new RangeError('empty point list');
  return p;
}

/** Catmull-Rom spline through a closed point list, written as cubic Beziers. */
export function smoothClosed(pts: readonly Point[]): string {
  let d = `M${pt(at(pts, 0))}`;
  for (let i = 0; i < pts.length; i++) {
    const p0 = at(pts, i - 1), p1 = at(pts, i), p2 = at(pts, i + 1), p3 = at(pts, i + 2);
    const c1: Point = [p1[0] + (p2[0] - p0[0]) / 6, p1[1] + (p2[1] - p0[1]) / 6];
    const c2: Point = [p2[0] - (p3[0] - p1[0]) / 6, p2[1] - (p3[1] - p1[1]) / 6];
    d += `C${pt(c1)} ${pt(c2)} ${pt(p2)}`;
  }
  return `${d}Z`;
}

/** Catmull-Rom spline through an open point list (end points repeated). */
export function smoothOpen(pts: readonly Point[]): string {
  let d = `M${pt(at(pts, 0))}`;
  const get = (i: number): Point => at(pts, Math.max(0, Math.min(pts.length - 1, i)));
  for (let i = 0; i < pts.length - 1; i++) {
    const p0 = get(i - 1), p1 = get(i), p2 = get(i + 1), p3 = get(i + 2);
    const c1: Point = [p1[0] + (p2[0] - p0[0]) / 6, p1[1] + (p2[1] - p0[1]) / 6];
    const c2: Point = [p2[0] - (p3[0] - p1[0]) / 6, p2[1] - (p3[1] - p1[1]) / 6];
    d += `C${pt(c1)} ${pt(c2)} ${pt(p2)}`;
  }
  return d;
}

export function polyline(pts: readonly Point[]): string {
  return pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${pt(p)}`).join('');
}

/** A whole document in the 256 user space, rasterised at size x size pixels. */
export function document(size: number, defs: string, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="${size}" ` +
    `height="${size}" viewBox="0 0 ${VIEW} ${VIEW}"><defs>${defs}</defs>${body}</svg>`;
}

/**
 * A film-grain overlay (seeded): white where the noise is above its mean and black where below, so flat
 * regions vary in both directions around their colour, as in a real camera.
 */
export function grain(id: string, seed: number, strength: number): { defs: string; body: string } {
  const k = n(strength);
  return {
    defs: `<filter id="${id}" x="0" y="0" width="1" height="1" color-interpolation-filters="sRGB">` +
      `<feTurbulence type="fractalNoise" baseFrequency="0.8" numOctaves="1" seed="${seed}" result="t"/>` +
      `<feColorMatrix in="t" type="matrix" result="w" values="0 0 0 0 1 0 0 0 0 1 0 0 0 0 1 ${k} 0 0 0 ${n(-0.5 * strength)}"/>` +
      `<feColorMatrix in="t" type="matrix" result="b" values="0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 -${k} 0 0 0 ${n(0.5 * strength)}"/>` +
      '<feMerge><feMergeNode in="w"/><feMergeNode in="b"/></feMerge></filter>',
    body: `<rect width="${VIEW}" height="${VIEW}" filter="url(#${id})"/>`,
  };
}
