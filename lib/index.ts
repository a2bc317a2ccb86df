export { HgadModel, LOSS_TERMS } from './model';
export type {
  ForwardResult, ScoreResult, TrainStepOptions, GradientOptions, GradientResult, LossTerms, LossTerm, TensorInfo,
} from './model';
export type { HgadConfig, LevelSpec, ResolvedConfig } from './config';
export { DEFAULTS } from './config';
export type { FeatureBatch, BatchShape } from './validate';
export { HgadError, HgadArgumentError, HgadNonFiniteError, HgadModelFileError } from './errors';
export type { HgadErrorCode } from './errors';
export type { SaveOptions } from './io/model-file';
