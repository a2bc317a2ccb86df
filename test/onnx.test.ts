// The protobuf / ONNX layer: hand-computed wire bytes, byte-exact round trips, edits that keep unknown fields.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import { GraphBuilder } from '../lib/onnx/builder';
import { OnnxModel } from '../lib/onnx/model';
import { DataType, attr, node, parseNode, tensor, tensorValues } from '../lib/onnx/proto';
import { Field, WireError, Writer, decodeFields, encodeFields, readRepeatedVarint, stringField, varintField } from '../lib/onnx/wire';

const MODEL = path.resolve(__dirname, '../../shared/models/mobilenetv2-12-int8.onnx');

test('varints match the protobuf encoding computed by hand', () => {
  expect(Array.from(new Writer().varint(1).finish())).toEqual([1]);
  expect(Array.from(new Writer().varint(300).finish())).toEqual([0xac, 0x02]);
  expect(Array.from(new Writer().varint(-1).finish())).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  expect(Array.from(new Writer().varint(2 ** 40).finish())).toEqual([0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
  // field 1 (varint) = 150: the protobuf documentation's example bytes 08 96 01
  const f = decodeFields(Uint8Array.from([0x08, 0x96, 0x01]));
  expect(f.map((x) => [x.no, x.wire, x.value])).toEqual([[1, 0, 150]]);
  // negative int64 values round-trip (dims of -1, axes of -1)
  const neg = encodeFields([varintField(8, -1), varintField(8, -3)]);
  expect(readRepeatedVarint(decodeFields(neg), 8)).toEqual([-1, -3]);
  // packed form is read too: field 8, length 4, values 1 2 300; a packed run cut inside a varint throws
  expect(readRepeatedVarint(decodeFields(Uint8Array.from([0x42, 0x04, 0x01, 0x02, 0xac, 0x02])), 8)).toEqual([1, 2, 300]);
  expect(() => readRepeatedVarint(decodeFields(Uint8Array.from([0x42, 0x03, 0x01, 0x02, 0xac])), 8)).toThrow(WireError);
});

test('truncated or malformed data throws WireError', () => {
  expect(() => decodeFields(Uint8Array.from([0x0a, 0x05, 0x61]))).toThrow(WireError); // claims 5 bytes, has 1
  expect(() => decodeFields(Uint8Array.from([0x08, 0x96]))).toThrow(WireError); // varint cut
  expect(() => decodeFields(Uint8Array.from([0x0b]))).toThrow(WireError); // group wire type
  const bytes = readFileSync(MODEL);
  expect(() => OnnxModel.decode(bytes.subarray(0, 2_000_000))).toThrow(WireError);
});

test('the real model decodes, lists its parts and re-encodes byte for byte', () => {
  const bytes = new Uint8Array(readFileSync(MODEL));
  const m = OnnxModel.decode(bytes);
  expect(m.opset('')).toBe(12);
  expect(m.graph.inputs).toEqual([{ name: 'input', elemType: DataType.FLOAT, shape: ['batch_size', 3, 224, 224] }]);
  expect(m.graph.outputs.map((o) => o.name)).toEqual(['output']);
  expect(m.graph.nodes.length).toBe(73);
  expect(m.graph.producer('365_quantized')?.opType).toBe('QLinearAdd');
  const scale = m.graph.initializer('365_scale');
  expect(scale?.dims).toEqual([]);
  expect(tensorValues(scale!)[0]).toBeGreaterThan(0);
  expect(Buffer.from(m.encode()).equals(Buffer.from(bytes))).toBe(true);
});

test('edits: add and remove inputs, outputs, nodes, initialisers; symbolic dims; other fields kept', () => {
  const m = OnnxModel.decode(new Uint8Array(readFileSync(MODEL)));
  const g = m.graph;
  g.setShape('input', 'input', ['N', 3, 'H', 'W']);
  g.removeOutput('output');
  g.addInitializer(tensor('k', [2], Float32Array.from([2, -0.5])));
  g.addNodes([node('Mul', ['x', 'k'], ['y'], 'mul1')], 'start');
  g.addNodes([node('Transpose', ['365_quantized'], ['t'], 'tr', [attr.ints('perm', [0, 2, 3, 1]), attr.int('neg', -2), attr.float('f', 0.25), attr.string('s', 'é')])], 'end');
  g.addInput({ name: 'x', elemType: DataType.FLOAT, shape: [2] });
  g.addOutput({ name: 't', elemType: DataType.UINT8 });
  const again = OnnxModel.decode(m.encode());
  expect(again.graph.inputs.map((i) => [i.name, i.shape])).toEqual([['input', ['N', 3, 'H', 'W']], ['x', [2]]]);
  expect(again.graph.outputs).toEqual([{ name: 't', elemType: DataType.UINT8 }]);
  const nodes = again.graph.nodes;
  expect(nodes[0]?.name).toBe('mul1');
  expect(nodes[nodes.length - 1]).toEqual({
    opType: 'Transpose', domain: '', name: 'tr', inputs: ['365_quantized'], outputs: ['t'],
    attributes: [{ name: 'perm', type: 7, value: [0, 2, 3, 1] }, { name: 'neg', type: 2, value: -2 }, { name: 'f', type: 1, value: 0.25 }, { name: 's', type: 3, value: 'é' }],
  });
  expect(tensorValues(again.graph.initializer('k')!)).toEqual([2, -0.5]);
  expect(again.opsets).toEqual(m.opsets);
  expect(again.producerName).toBe('onnx.quantize');
  // the untouched nodes are the original bytes
  expect(nodes.slice(1, -1)).toEqual(OnnxModel.decode(new Uint8Array(readFileSync(MODEL))).graph.nodes);
});

test('unknown fields survive an edit unchanged', () => {
  const unknownModelField: Field = stringField(99, 'future model field');
  const base = OnnxModel.create({ graphName: 'g', opsets: [{ domain: '', version: 13 }] });
  base.graph.addInput({ name: 'a', elemType: DataType.FLOAT, shape: [1] });
  const withUnknown = new Uint8Array([...base.encode(), ...encodeFields([unknownModelField])]);
  // an unknown field inside a node too
  const n = encodeFields([...decodeFields(new Uint8Array(0)), stringField(1, 'a'), stringField(2, 'b'), stringField(4, 'Relu'), varintField(77, 5)]);
  expect(parseNode(n).opType).toBe('Relu');
  const m = OnnxModel.decode(withUnknown);
  m.graph.addOutput({ name: 'a', elemType: DataType.FLOAT });
  const out = m.encode();
  const top = decodeFields(out);
  expect(top.filter((f) => f.no === 99).map((f) => Buffer.from(f.value as Uint8Array).toString())).toEqual(['future model field']);
});

test('tensorValues reads a tensor inside a Node Buffer (whose slice() is a view, not a copy)', () => {
  const inner = new Uint8Array(new Float32Array([1.5, -2, 7]).buffer);
  const file = Buffer.concat([Buffer.from([9, 9, 9, 9, 9]), Buffer.from(inner), Buffer.from([9, 9])]);
  expect(tensorValues({ name: 'v', dataType: DataType.FLOAT, dims: [3], raw: file.subarray(5, 17) })).toEqual([1.5, -2, 7]);
});

test('GraphBuilder: unique names, reserved output names, inputs checked, a model that decodes back', () => {
  const b = new GraphBuilder();
  const x = b.input({ name: 'x', elemType: DataType.FLOAT, shape: ['n', 2] });
  b.reserve('y');
  const k = b.constant('k', [2], new Float32Array([2, 3]));
  const m = b.op('Mul', [x, k], 'y'); // fresh() must not hand out the reserved "y"
  expect(m).toBe('y_1');
  b.op('Relu', [m], 'relu', [], 'y');
  b.output({ name: 'y', elemType: DataType.FLOAT });
  expect(() => b.op('Add', [m, 'nowhere'], 'bad')).toThrow(WireError);
  expect(() => b.claim('y')).toThrow(WireError);
  const model = OnnxModel.decode(b.build({ graphName: 'g', opsets: [{ domain: '', version: 13 }] }).encode());
  expect(model.graph.nodes.map((n) => [n.opType, n.name, n.inputs, n.outputs])).toEqual([['Mul', 'y', ['x', 'k'], ['y_1']], ['Relu', 'relu', ['y_1'], ['y']]]);
  expect(model.graph.inputs.map((i) => i.name)).toEqual(['x']);
  expect(model.graph.outputs.map((o) => o.name)).toEqual(['y']);
  expect(tensorValues(model.graph.initializer('k')!)).toEqual([2, 3]);
  expect(model.opset('')).toBe(13);
});
