// The flow stage of the pipeline: every level of one batch of feature maps through the model, with
// one class per image decided across all levels (given by the caller, or inferred from the class
// posteriors averaged over the levels, so every level scores an image under the same class).
import type { Density, HgadModel } from '../model';
import { pickRows } from '../score/class-constants';
import type { LevelMaps } from '../score/maps';
import type { FeatureBatch } from '../validate';
import type { ClassFlows } from './class-flows';

export interface FlowStageResult {
  levels: LevelMaps[];
  classIndex: Int32Array;
  /** Mean over levels and positions of the posterior of the class used, per image. */
  classConfidence: Float32Array;
  /** The class posteriors averaged over levels, [batch, classes]. */
  classPosterior: Float32Array;
}

/**
 * density: the detector's (spec.map.density); no default, so that no caller scores under another one.
 * classFlows: the detector's (AnomalyDetector.classFlows): the maps of images of those classes come
 * from their class's own flow, the class posterior from `model` for every image.
 */
export async function flowStage(model: HgadModel, features: FeatureBatch[], given: Int32Array | null,
  density: Density, classFlows?: ClassFlows): Promise<FlowStageResult> {
  const Y = model.config.classes.length;
  const batch = features[0]!.batch;
  const scores = [];
  for (let l = 0; l < features.length; l++) scores.push(await model.score(l, features[l]!, given ?? undefined, { density }));
  // Per image and class: the posterior averaged over levels (batch * classes * levels numbers).
  const posterior = new Float32Array(batch * Y);
  for (const s of scores) for (let i = 0; i < posterior.length; i++) posterior[i]! += s.classPosterior[i]! / scores.length;
  let classIndex = given;
  if (!classIndex) {
    classIndex = new Int32Array(batch);
    for (let b = 0; b < batch; b++) {
      let best = 0;
      for (let y = 1; y < Y; y++) if (posterior[b * Y + y]! > posterior[b * Y + best]!) best = y;
      classIndex[b] = best;
    }
    // A level whose own choice disagrees for some image is scored again under the common classes.
    for (let l = 0; l < scores.length; l++) {
      const own = scores[l]!.classIndex;
      if (own.some((c, b) => c !== classIndex![b])) scores[l] = await model.score(l, features[l]!, classIndex, { density });
    }
  }
  if (classFlows && classFlows.size > 0) await ownFlowMaps(model, classFlows, features, classIndex, scores, density);
  const confidence = new Float32Array(batch);
  for (let b = 0; b < batch; b++) confidence[b] = posterior[b * Y + classIndex[b]!]!;
  return {
    levels: scores.map((s, l) => ({
      logp: s.logp, negEntropy: s.negEntropy, height: features[l]!.height, width: features[l]!.width,
    })),
    classIndex,
    classConfidence: confidence,
    classPosterior: posterior,
  };
}

/** The logp maps of images whose class has a flow of its own, from that flow; their negative entropy 0 (one class). */
async function ownFlowMaps(model: HgadModel, classFlows: ClassFlows, features: FeatureBatch[], classIndex: Int32Array,
  scores: { logp: Float32Array; negEntropy: Float32Array }[], density: Density): Promise<void> {
  for (const [className, flow] of classFlows.entries()) {
    const y = model.config.classes.indexOf(className);
    const images: number[] = [];
    classIndex.forEach((c, b) => {
      if (c === y) images.push(b);
    });
    if (images.length === 0) continue;
    for (let l = 0; l < features.length; l++) {
      const f = features[l]!;
      const HW = f.height * f.width;
      const x = images.length < f.batch ? { ...f, batch: images.length, data: pickRows(f.data, images, HW * f.channels) } : f;
      const own = await flow.score(l, x, 0, { density });
      const s = scores[l]!;
      images.forEach((b, k) => {
        s.logp.set(own.logp.subarray(k * HW, (k + 1) * HW), b * HW);
        s.negEntropy.fill(0, b * HW, (b + 1) * HW);
      });
    }
  }
}
