/**
 * The DEMO backbone: a small fixed convolutional feature extractor built from a seed, for demos and tests
 * that must run without downloading a pretrained network. It is not trained on anything: its first layer
 * holds oriented Gabor filters (edges and textures at 4 orientations, 2 wavelengths, 2 phases) plus seeded
 * random filters, the later layers seeded He-initialised random filters. Features of real backbones
 * (presets.ts) are far better for anomaly detection.
 */
import { OnnxModel } from '../onnx/model';
import { mulberry32 } from '../data/random';
import { DataType, attr, node, tensor } from '../onnx/proto';

export const DEMO_TAPS: readonly string[] = ['demo_s4', 'demo_s8', 'demo_s16'];
export const DEMO_INPUT_SIZE = 256;
export const DEMO_DOC = 'hgad DEMO backbone: fixed, seeded filters (Gabor + random), NOT trained; for demos and tests only';

interface Stage {
  out: string;
  cin: number;
  cout: number;
  k: number;
}

// each stage halves the resolution (convolution, ReLU, 2x2 average): stem (2), s4, s8, s16
const STAGES: readonly Stage[] = [
  { out: 'demo_stem', cin: 3, cout: 24, k: 7 },
  { out: 'demo_s4', cin: 24, cout: 32, k: 3 },
  { out: 'demo_s8', cin: 32, cout: 64, k: 3 },
  { out: 'demo_s16', cin: 64, cout: 96, k: 3 },
];

function gaussian(next: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

// One-time construction of ~100k weights (not a per-image loop): the filters are zero-mean and unit-norm so
// the first layer responds to structure, not to brightness.
function normalise(w: Float32Array, from: number, size: number): void {
  let mean = 0;
  for (let i = 0; i < size; i++) mean += w[from + i] as number;
  mean /= size;
  let norm = 0;
  for (let i = 0; i < size; i++) {
    const v = (w[from + i] as number) - mean;
    w[from + i] = v;
    norm += v * v;
  }
  const s = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let i = 0; i < size; i++) w[from + i] = (w[from + i] as number) * s;
}

function stemWeights(randn: () => number): Float32Array {
  const { cout, cin, k } = STAGES[0]!;
  const w = new Float32Array(cout * cin * k * k);
  const size = cin * k * k;
  const r = (k - 1) / 2;
  let f = 0;
  for (const lambda of [3, 6]) for (let o = 0; o < 4; o++) for (const phase of [0, Math.PI / 2]) {
    const theta = (o * Math.PI) / 4;
    const sigma = 0.5 * lambda;
    for (let y = 0; y < k; y++) for (let x = 0; x < k; x++) {
      const dx = x - r;
      const dy = y - r;
      const u = dx * Math.cos(theta) + dy * Math.sin(theta);
      const v = -dx * Math.sin(theta) + dy * Math.cos(theta);
      const g = Math.exp(-(u * u + v * v) / (2 * sigma * sigma)) * Math.cos((2 * Math.PI * u) / lambda + phase);
      // the same filter on R, G and B: it sees luminance
      for (let c = 0; c < cin; c++) w[f * size + c * k * k + y * k + x] = g;
    }
    normalise(w, f * size, size);
    f++;
  }
  for (; f < cout; f++) {
    for (let i = 0; i < size; i++) w[f * size + i] = randn();
    normalise(w, f * size, size);
  }
  return w;
}

/** ONNX bytes of the demo backbone; the same seed gives the same bytes. Input `input`: float32 [N, 3, H, W]
 *  normalised with ImageNet mean/std; taps DEMO_TAPS (strides 4, 8, 16; 32, 64, 96 channels). */
export function buildDemoBackbone(seed = 0): Uint8Array {
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`);
  const randn = gaussian(mulberry32(seed));
  const model = OnnxModel.create({
    graphName: 'hgad_demo_backbone',
    opsets: [{ domain: '', version: 13 }],
    docString: DEMO_DOC,
    metadata: { 'hgad.demo_backbone': 'true', 'hgad.seed': String(seed) },
  });
  const g = model.graph;
  g.addInput({ name: 'input', elemType: DataType.FLOAT, shape: ['N', 3, 'H', 'W'] });
  let prev = 'input';
  const nodes = [];
  for (const [i, s] of STAGES.entries()) {
    let w: Float32Array;
    if (i === 0) w = stemWeights(randn);
    else {
      w = new Float32Array(s.cout * s.cin * s.k * s.k);
      const std = Math.sqrt(2 / (s.cin * s.k * s.k));
      for (let j = 0; j < w.length; j++) w[j] = randn() * std;
    }
    g.addInitializer(tensor(`${s.out}.weight`, [s.cout, s.cin, s.k, s.k], w));
    g.addInitializer(tensor(`${s.out}.bias`, [s.cout], new Float32Array(s.cout)));
    const pad = (s.k - 1) / 2;
    // Convolution at full resolution, then a 2x2 average: a strided convolution of random filters aliases,
    // so a shift of one pixel would change the features more than a defect does.
    nodes.push(node('Conv', [prev, `${s.out}.weight`, `${s.out}.bias`], [`${s.out}_conv`], `${s.out}_conv`, [
      attr.ints('kernel_shape', [s.k, s.k]), attr.ints('strides', [1, 1]), attr.ints('pads', [pad, pad, pad, pad]),
    ]));
    nodes.push(node('Relu', [`${s.out}_conv`], [`${s.out}_relu`], `${s.out}_relu`));
    nodes.push(node('AveragePool', [`${s.out}_relu`], [s.out], `${s.out}_pool`, [
      attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2]),
    ]));
    prev = s.out;
  }
  g.addNodes(nodes, 'end');
  g.addOutput({ name: prev, elemType: DataType.FLOAT, shape: ['N', STAGES[STAGES.length - 1]!.cout, 'h', 'w'] });
  return model.encode();
}
