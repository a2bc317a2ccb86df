/**
 * Rewrites a backbone ONNX graph so one session run takes RGB uint8 images (NHWC) and returns the tapped
 * feature maps as float32 NHWC: Cast -> Transpose -> [Resize] -> Mul -> Add feed the original image input;
 * each tap gets DequantizeLinear (when quantised) and a Transpose to NHWC. The original outputs are removed
 * so onnxruntime prunes the layers that only the classifier needs.
 */
import { HgadArgumentError, HgadError } from '../errors';
import { OnnxModel } from '../onnx/model';
import { DataType, OnnxNode, attr, node, tensor } from '../onnx/proto';
import { classifyTap } from './quantization';

export const PIXELS_INPUT = 'hgad_pixels';
export const SIZES_INPUT = 'hgad_sizes';

export interface GraphOptions {
  taps: string[];
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
  /** Add a Resize fed by the `hgad_sizes` input (int64 [4]: N, 3, height, width). */
  resize: boolean;
  /** Parameter name used in errors about the taps (default 'taps'). */
  tapsParameter?: string;
}

export interface PreparedGraph {
  bytes: Uint8Array;
  /** Output name of each tap, in the order of `taps`. */
  outputs: string[];
}

/** Up to `count` tensor names spread over the graph, to suggest in an error about an unknown tap. */
function exampleTensors(model: OnnxModel, count: number): string[] {
  const names = model.graph.nodes.flatMap((n) => n.outputs).filter((n) => n.length > 0);
  if (names.length <= count) return names;
  const out: string[] = [];
  for (let i = 1; i <= count; i++) out.push(names[Math.floor((i * names.length) / (count + 1))] as string);
  return out;
}

export function prepareGraph(model: OnnxModel, options: GraphOptions): PreparedGraph {
  const g = model.graph;
  const param = options.tapsParameter ?? 'taps';
  const initNames = new Set(g.initializers.map((t) => t.name));
  // Old exporters list the weights as graph inputs too; the image is the input that is not an initialiser.
  const imageInputs = g.inputs.filter((i) => !initNames.has(i.name));
  if (imageInputs.length !== 1) {
    throw new HgadError('MODEL_FILE', `A backbone must have exactly one image input; this model has ${imageInputs.length} ` +
      `(${imageInputs.map((i) => i.name).join(', ')})`, 'model');
  }
  const image = imageInputs[0]!;
  if (image.elemType !== undefined && image.elemType !== DataType.FLOAT) {
    throw new HgadError('MODEL_FILE', `The backbone's input "${image.name}" must be float32; it is element type ${image.elemType}`, 'model');
  }
  if (image.shape !== undefined && image.shape.length !== 4) {
    throw new HgadError('MODEL_FILE', `The backbone's input "${image.name}" must be 4-D (N, 3, H, W); it has ${image.shape.length} dims`, 'model');
  }
  const opset = model.opset('') ?? 0;
  if (options.resize && opset < 11) {
    throw new HgadArgumentError('scales', `a single input size: the model imports opset ${opset}, whose Resize has no sizes input (11 or later needed)`, opset);
  }

  const produced = new Set(g.nodes.flatMap((n) => n.outputs));
  const typeOf = new Map<string, number | undefined>();
  for (const vi of [...g.valueInfo, ...g.outputs]) typeOf.set(vi.name, vi.elemType);
  options.taps.forEach((tap, i) => {
    if (!produced.has(tap)) {
      throw new HgadArgumentError(`${param}[${i}]`, `a tensor of the model; e.g. ${exampleTensors(model, 5).join(', ')}`, tap);
    }
  });

  const taken = g.tensorNames();
  const fresh = (base: string): string => {
    let name = base;
    for (let k = 1; taken.has(name); k++) name = `${base}_${k}`;
    taken.add(name);
    return name;
  };

  // Preprocessing. (x / 255 - mean) / std  ==  x * (1 / (255 std)) + (-mean / std), per channel.
  const pre: OnnxNode[] = [];
  const castOut = fresh('hgad_pixels_float');
  const nchw = fresh('hgad_pixels_nchw');
  pre.push(node('Cast', [PIXELS_INPUT], [castOut], fresh('hgad_cast'), [attr.int('to', DataType.FLOAT)]));
  pre.push(node('Transpose', [castOut], [nchw], fresh('hgad_to_nchw'), [attr.ints('perm', [0, 3, 1, 2])]));
  let sized = nchw;
  if (options.resize) {
    const roi = fresh('hgad_resize_roi');
    const scales = fresh('hgad_resize_scales');
    g.addInitializer(tensor(roi, [0], new Float32Array(0)));
    g.addInitializer(tensor(scales, [0], new Float32Array(0)));
    sized = fresh('hgad_pixels_resized');
    const attrs = [attr.string('mode', 'linear'), attr.string('coordinate_transformation_mode', 'half_pixel')];
    // Opset 18 added anti-aliasing: use it so down-scaled passes average pixels instead of skipping them.
    if (opset >= 18) attrs.push(attr.int('antialias', 1));
    pre.push(node('Resize', [nchw, roi, scales, SIZES_INPUT], [sized], fresh('hgad_resize'), attrs));
    g.addInput({ name: SIZES_INPUT, elemType: DataType.INT64, shape: [4] });
  }
  const mul = fresh('hgad_norm_mul');
  const add = fresh('hgad_norm_add');
  const scaled = fresh('hgad_pixels_scaled');
  g.addInitializer(tensor(mul, [1, 3, 1, 1], Float32Array.from(options.std, (s) => 1 / (255 * s))));
  g.addInitializer(tensor(add, [1, 3, 1, 1], Float32Array.from(options.mean, (m, c) => -m / (options.std[c] as number))));
  pre.push(node('Mul', [sized, mul], [scaled], fresh('hgad_norm_scale')));
  pre.push(node('Add', [scaled, add], [image.name], fresh('hgad_norm_shift')));

  g.removeInput(image.name);
  g.addInput({ name: PIXELS_INPUT, elemType: DataType.UINT8, shape: ['batch', 'height', 'width', 3] });
  g.addNodes(pre, 'start');

  // Taps.
  const post: OnnxNode[] = [];
  const outputs: string[] = [];
  options.taps.forEach((tap, i) => {
    const kind = classifyTap(g, tap, typeOf.get(tap));
    let source = tap;
    if (kind.kind === 'unknown-quantized') {
      throw new HgadError('INVALID_ARGUMENT', `Expected a float tensor or the output of a quantising operator for ${param}[${i}] ` +
        `but "${tap}" is quantised by ${kind.producer.domain ? kind.producer.domain + '.' : ''}${kind.producer.opType}, whose output ` +
        'scale and zero point hgad does not know', `${param}[${i}]`);
    }
    if (kind.kind === 'quantized') {
      source = fresh(`hgad_tap${i}_float`);
      const inputs = kind.zeroPoint ? [tap, kind.scale, kind.zeroPoint] : [tap, kind.scale];
      post.push(node('DequantizeLinear', inputs, [source], fresh(`hgad_tap${i}_dequantize`)));
    }
    const out = fresh(`hgad_tap${i}`);
    post.push(node('Transpose', [source], [out], fresh(`hgad_tap${i}_to_nhwc`), [attr.ints('perm', [0, 2, 3, 1])]));
    outputs.push(out);
  });
  for (const o of g.outputs) g.removeOutput(o.name);
  g.clearValueInfoShapes();
  g.addNodes(post, 'end');
  for (const o of outputs) g.addOutput({ name: o, elemType: DataType.FLOAT, shape: ['batch', `${o}_height`, `${o}_width`, `${o}_channels`] });
  return { bytes: model.encode(), outputs };
}
