// The demo dataset generator behind `hgad demo`.
export { DEMO_CLASSES } from './classes';
export { generateDemoDataset, describeDemoDataset, DEMO_MANIFEST } from './dataset';
export type { DemoDatasetInfo, DemoClassCounts } from './dataset';
export { DEMO_DEFAULTS } from './options';
export type { DemoDatasetOptions } from './options';
export { renderDemoSample, DEMO_DEFECT_AREA } from './render';
export type { DemoSampleSpec, DemoSample, DemoSplit } from './render';
export type { DefectKind } from './scene';
