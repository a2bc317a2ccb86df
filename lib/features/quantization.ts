/**
 * Where a quantised tensor's scale and zero point come from: the output quantisation inputs of the node
 * that produced it. Shape-only operators (MaxPool, Reshape, ...) pass their input's quantisation through.
 */
import type { OnnxGraph } from '../onnx/model';
import type { OnnxNode } from '../onnx/proto';

/** [y_scale input index, y_zero_point input index] of each operator that writes a quantised tensor. */
const OUTPUT_QPARAMS: Readonly<Record<string, readonly [number, number]>> = {
  QuantizeLinear: [1, 2],
  QLinearConv: [6, 7],
  QLinearMatMul: [6, 7],
  // com.microsoft contrib operators
  QLinearAdd: [6, 7],
  QLinearMul: [6, 7],
  QLinearConvTranspose: [6, 7],
  QLinearAveragePool: [3, 4],
  QLinearGlobalAveragePool: [3, 4],
  QLinearLeakyRelu: [3, 4],
  QLinearSigmoid: [3, 4],
  QLinearSoftmax: [3, 4],
  QLinearReduceMean: [3, 4],
  QLinearConcat: [0, 1],
  QLinearWhere: [7, 8],
  QGemm: [7, 8],
};

/** Operators whose output carries the quantisation of their first input unchanged. */
const PASS_THROUGH = new Set(['MaxPool', 'Reshape', 'Transpose', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'DepthToSpace', 'SpaceToDepth']);

const CONTRIB_DOMAINS = new Set(['com.microsoft']);

export type TapKind =
  | { kind: 'quantized'; scale: string; zeroPoint: string; producer: OnnxNode }
  | { kind: 'float' }
  | { kind: 'unknown-quantized'; producer: OnnxNode };

function qparams(n: OnnxNode): readonly [string, string] | undefined {
  const isDefault = n.domain === '' || n.domain === 'ai.onnx';
  const known = OUTPUT_QPARAMS[n.opType];
  if (!known || !(isDefault || CONTRIB_DOMAINS.has(n.domain))) return undefined;
  const s = n.inputs[known[0]];
  const z = n.inputs[known[1]];
  // QGemm without y_scale writes float; QuantizeLinear without a zero point means uint8 with zero point 0.
  if (!s) return undefined;
  return [s, z ?? ''];
}

/**
 * Classifies a tap: quantised with known parameters, float, or quantised by an operator hgad does not
 * know. `elemType` is the tap's element type when the model states it (value_info), else undefined.
 */
export function classifyTap(graph: OnnxGraph, tap: string, elemType: number | undefined): TapKind {
  let name = tap;
  for (let hops = 0; hops < 64; hops++) {
    const p = graph.producer(name);
    if (!p) return { kind: 'float' };
    const q = qparams(p);
    if (q) return { kind: 'quantized', scale: q[0], zeroPoint: q[1], producer: p };
    if (PASS_THROUGH.has(p.opType) && p.inputs[0]) {
      name = p.inputs[0];
      continue;
    }
    const quantizedType = elemType === 2 || elemType === 3; // uint8, int8
    return quantizedType || p.opType.startsWith('QLinear') ? { kind: 'unknown-quantized', producer: graph.producer(tap) as OnnxNode } : { kind: 'float' };
  }
  return { kind: 'float' };
}
