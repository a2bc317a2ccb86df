// Flows of classes' own (spec.classFlows, issue 15). A class added to a trained detector cannot be
// learnt by the shared flow without moving every old class's latents (and so their thresholds); with
// the shared flow frozen, the new class's centres sit in a latent space that was never trained on it,
// and its maps are at chance (benchmarks/RESULTS.md, issue 15). So an added class gets a flow of its
// own over the same features: its maps come from that flow, while which class an image is (the class
// posterior) still comes from the shared flow's mixture, where the new class has centres too.
import type { HgadConfig } from '../config';
import { HgadModelFileError } from '../errors';
import type { ExtraTensor } from '../io/model-file';
import { HgadModel } from '../model';
import type { ClassFlowSpec, PipelineSpec } from './spec';

const PREFIX = 'pipeline.classFlow.';
const tensorName = (index: number, name: string): string => `${PREFIX}${index}.${name}`;

/** The config of a class flow: the shared flow's levels, clamp, encoding, device and precisions; one class. */
export function classFlowConfig(shared: HgadModel, f: ClassFlowSpec, threads = shared.threads): HgadConfig {
  const c = shared.config;
  return {
    levels: c.levels.map((l) => ({ channels: l.channels })), classes: [f.className], prior: 'hgad',
    centersPerClass: f.centersPerClass, couplingLayers: f.couplingLayers, clamp: c.clamp, posEmbedDim: c.posEmbedDim, seed: f.seed,
    threads, device: shared.device, precision: c.precision, trainPrecision: c.trainPrecision,
  };
}

export class ClassFlows {
  private readonly byClass: ReadonlyMap<string, HgadModel>;

  constructor(entries: Iterable<[string, HgadModel]> = []) {
    this.byClass = new Map(entries);
  }

  /** The class flows a loaded detector's spec lists, built from the file's "pipeline.classFlow." tensors. */
  static async fromFile(spec: PipelineSpec, shared: HgadModel, path: string): Promise<ClassFlows> {
    const flows = spec.classFlows ?? [];
    for (const name of shared.extraTensors.keys()) {
      if (!name.startsWith(PREFIX)) continue;
      const index = Number(name.slice(PREFIX.length).split('.')[0]);
      if (!(Number.isInteger(index) && index >= 0 && index < flows.length)) {
        throw new HgadModelFileError(path, `tensor "${name}" belongs to no class flow (metadata.pipeline.classFlows lists ${flows.length})`);
      }
    }
    const out: [string, HgadModel][] = [];
    for (let i = 0; i < flows.length; i++) {
      const tensors = new Map<string, Float32Array>();
      for (const [name, t] of shared.extraTensors) {
        if (name.startsWith(tensorName(i, ''))) tensors.set(name.slice(tensorName(i, '').length), t.data);
      }
      out.push([flows[i]!.className, await HgadModel.fromTensors(classFlowConfig(shared, flows[i]!), tensors, path)]);
    }
    return new ClassFlows(out);
  }

  get size(): number {
    return this.byClass.size;
  }

  get(className: string): HgadModel | undefined {
    return this.byClass.get(className);
  }

  /** These flows and `className`'s. */
  with(className: string, flow: HgadModel): ClassFlows {
    return new ClassFlows([...this.byClass, [className, flow]]);
  }

  entries(): IterableIterator<[string, HgadModel]> {
    return this.byClass.entries();
  }

  /** The tensors to store, named by each flow's place in spec.classFlows. */
  async tensors(spec: PipelineSpec): Promise<Map<string, ExtraTensor>> {
    const out = new Map<string, ExtraTensor>();
    const flows = spec.classFlows ?? [];
    for (let i = 0; i < flows.length; i++) {
      const flow = this.byClass.get(flows[i]!.className);
      if (!flow) throw new Error(`spec.classFlows names ${flows[i]!.className}, which has no flow here`);
      for (const t of flow.tensorInfo()) out.set(tensorName(i, t.name), { shape: t.shape, data: await flow.getTensor(t.name) });
    }
    return out;
  }
}
