// The built-in demo classes, in the order the dataset lists them.
import { nut, pill } from './objects';
import type { DemoClassSpec } from './scene';
import { carpet, tile, wood } from './textures';

const SPECS: readonly DemoClassSpec[] = [carpet, wood, tile, pill, nut];

export const DEMO_CLASS_SPECS: ReadonlyMap<string, DemoClassSpec> = new Map(SPECS.map((s) => [s.name, s]));

/** Names of the built-in classes: textures (carpet, wood, tile) and objects (pill, nut). */
export const DEMO_CLASSES: readonly string[] = Object.freeze(SPECS.map((s) => s.name));
