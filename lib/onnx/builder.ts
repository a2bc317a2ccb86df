/**
 * Building a new ONNX graph node by node (for converters): unique tensor names, weights as initialisers,
 * nodes kept in the order they are added (callers add them topologically), then one OnnxModel.
 */
import { OnnxModel, OpsetImport } from './model';
import { Attribute, OnnxNode, TensorData, ValueInfo, node, tensor } from './proto';
import { WireError } from './wire';

export class GraphBuilder {
  private readonly nodes: OnnxNode[] = [];
  private readonly initializers: TensorData[] = [];
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly names = new Set<string>();
  private readonly reserved = new Set<string>();
  private readonly nodeNames = new Set<string>();

  /** `base`, or `base_1`, `base_2`, ... if taken or reserved; the name is taken. */
  fresh(base: string): string {
    let name = base;
    for (let k = 1; this.names.has(name) || this.reserved.has(name); k++) name = `${base}_${k}`;
    this.names.add(name);
    return name;
  }

  /** Keeps `fresh` away from a name that `claim` will take later (e.g. a graph output's). */
  reserve(name: string): void {
    if (this.names.has(name)) throw new WireError(`tensor name "${name}" is already used`);
    this.reserved.add(name);
  }

  /** Takes an exact name; throws if some tensor already has it. */
  claim(name: string): string {
    if (this.names.has(name)) throw new WireError(`tensor name "${name}" is used twice`);
    this.reserved.delete(name);
    this.names.add(name);
    return name;
  }

  input(vi: ValueInfo): string {
    this.inputs.push(vi);
    return this.claim(vi.name);
  }

  /** Marks an existing tensor as a graph output. */
  output(vi: ValueInfo): void {
    if (!this.names.has(vi.name)) throw new WireError(`graph output "${vi.name}" is not a tensor of the graph`);
    this.outputs.push(vi);
  }

  /** A weight or constant; returns its (fresh) name. */
  constant(base: string, dims: number[], data: Float32Array | Int32Array | BigInt64Array | Uint8Array | Int8Array): string {
    const name = this.fresh(base);
    this.initializers.push(tensor(name, dims, data));
    return name;
  }

  /** Adds a node with one output, named `output` when given (it must be free or reserved), else a fresh
   *  name from the node's; node names are unique among nodes. Returns the output's name. */
  op(opType: string, inputs: string[], name: string, attributes: Attribute[] = [], output?: string): string {
    for (const i of inputs) if (i !== '' && !this.names.has(i)) throw new WireError(`node "${name}" reads "${i}", which no earlier node, input or initialiser makes`);
    const out = output !== undefined ? this.claim(output) : this.fresh(name);
    let nodeName = name;
    for (let k = 1; this.nodeNames.has(nodeName); k++) nodeName = `${name}_${k}`;
    this.nodeNames.add(nodeName);
    this.nodes.push(node(opType, inputs, [out], nodeName, attributes));
    return out;
  }

  build(options: { graphName: string; opsets: OpsetImport[]; irVersion?: number; producer?: string; docString?: string; metadata?: Record<string, string> }): OnnxModel {
    const model = OnnxModel.create(options);
    const g = model.graph;
    for (const vi of this.inputs) g.addInput(vi);
    for (const vi of this.outputs) g.addOutput(vi);
    g.addNodes(this.nodes, 'end');
    for (const t of this.initializers) g.addInitializer(t);
    return model;
  }
}
