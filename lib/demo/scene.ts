// What a class renderer hands to the defect renderer: the normal image as SVG plus where and how
// defects may be drawn on it.
import type { Rng } from './prng';
import type { Point } from './svg';

export type DefectKind = 'scratch' | 'spot' | 'missing' | 'crack';

/** Id of the element that holds the background; a `missing` defect shows it again through the cut. */
export const BACKGROUND_ID = 'bg';
/** Id of the clip path with an object's silhouette (objects only). */
export const OBJECT_CLIP_ID = 'obj';

export interface DefectStyle {
  /** Stroke colour of a scratch and of its lighter core. */
  scratch: { color: string; core: string };
  /** Fill colours a spot (stain, contamination) is drawn with. */
  spot: readonly string[];
  /** Stroke colour of a crack. */
  crack: string;
  /** Colour of the rim a cut leaves around a hole. */
  rim: string;
}

export interface Scene {
  defs: string;
  /** Drawn first, wrapped in an element with id BACKGROUND_ID: what a hole through the surface shows. */
  background: string;
  /** The texture or object drawn over the background. */
  foreground: string;
  /** Drawn last, over any defect (sensor grain, lighting), so a defect looks photographed too. */
  overlay: string;
  /** True for objects: defects are clipped to the silhouette in OBJECT_CLIP_ID (defined in defs). */
  object: boolean;
  /** A random point of the surface where a scratch, spot or crack may start. */
  surfacePoint(rng: Rng): Point;
  /** A random point where a piece may be missing: on the outline of an object, anywhere on a texture. */
  cutPoint(rng: Rng): Point;
  style: DefectStyle;
  /** Per-image exposure: output = gain * rendered + offset (0..255 scale). */
  gain: number;
  offset: number;
}

export interface DemoClassSpec {
  name: string;
  kind: 'texture' | 'object';
  defects: readonly DefectKind[];
  /** A normal image; everything random comes from rng. */
  scene(rng: Rng): Scene;
}
