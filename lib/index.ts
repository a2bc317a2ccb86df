// The public API. The pipeline (images -> anomaly maps): train() and AnomalyDetector with scoreImages
// and evaluateDetector; the engine underneath: HgadModel over feature maps.
export { HgadModel, LOSS_TERMS, DENSITIES, cudaInfo } from './model';
export type {
  CudaInfo, ForwardResult, ScoreResult, TrainStepOptions, GradientOptions, GradientResult, LossTerms, LossTerm, TensorInfo,
  LoadOptions, ModelPrecision, PrecisionOptions, Density, ScoreCallOptions,
} from './model';
export { cpuPrecision, PRECISION_CHOICES, DEFAULT_INFERENCE_PRECISION, DEFAULT_TRAINING_PRECISION } from './precision';
export type { Precision, PrecisionChoice, CpuPrecisionInfo } from './precision';
export { modelMemoryLimit, MODEL_MEMORY_SHARE } from './limits';
export type { HgadConfig, LevelSpec, ResolvedConfig, DeviceChoice } from './config';
export { DEFAULTS } from './config';
export type { FeatureBatch, BatchShape } from './validate';
export { HgadError, HgadArgumentError, HgadNonFiniteError, HgadModelFileError, HGAD_ERROR_CODES } from './errors';
export type { HgadErrorCode } from './errors';
export type { SaveOptions } from './io/model-file';

// Pipeline
export { AnomalyDetector } from './pipeline/detector';
export type { DetectorLoadOptions, DetectorSaveOptions } from './pipeline/detector';
export type { PipelineSpec, BackboneSpec, Calibration, TrainingState, HistoryEntry, MapSpec, MapCombine, ClassFlowSpec } from './pipeline/spec';
export type { BackboneChoice } from './pipeline/backbone-spec';
export { MAP_METHODS, DEFAULT_BANK_SIZE } from './pipeline/latent-banks';
export type { MapMethod, NearestSpec } from './pipeline/latent-banks';
export { train, DEFAULT_DENSITY } from './train/trainer';
export type { TrainOptions, FlowOptions } from './train/trainer';
export { extendDetector } from './train/extend';
export type { ExtendOptions, ClassFlowOptions } from './train/extend';
export type { TrainProgress } from './train/progress';
export { resolveSchedule, learningRate, SCHEDULE_DEFAULTS } from './train/schedule';
export type { Schedule, ScheduleOptions } from './train/schedule';
export { scoreImages } from './score/scorer';
export type {
  AnomalyResult, FailedImage, ImageError, ImageResult, ImageInput, InputLabels, ResultOrigin, ScoreOptions, Normalization,
} from './score/scorer';
export { parseThreshold } from './score/threshold';
export type { ThresholdOverride, ThresholdSource } from './score/threshold';
export { startServer, buildApp } from './serve';
export type { BuildAppOptions, RunningServer, ServeOptions, ServiceErrorCode } from './serve';
export { startWorker, connectScoringClient, enqueueScoring, ResultsFile, modelFingerprint, defaultQueueName } from './queue';
export type {
  ClientOptions, QueueResult, SubmitOptions, SubmitProgress, ScoringClient, RunningWorker, WorkerOptions, WorkerStats, ResultsFormat,
} from './queue';
export type { PresentedResult, PresentedScore, PresentedError } from './score/present';
export { calibrate } from './score/calibrate';
export { writeHeatmaps } from './score/heatmap-files';
export { heatmapPng, overlayPng, colorize } from './score/heatmap';
export { evaluateDetector } from './eval/run';
export type { EvaluateOptions, EvaluationOutput, EvaluatedImage } from './eval/run';
export { evaluate } from './eval/evaluate';
export type { EvalReport, EvalSample, ClassMetrics } from './eval/evaluate';
export { auroc, aupro, f1Max } from './eval/metrics';
export { reportToMarkdown } from './eval/table';
export { writeReport, renderReport } from './report';
export type { RenderReportOptions, WriteReportOptions } from './report';

// Data, backbones, the demo
export * from './data';
export { Backbone } from './features/backbone';
export type { BackboneOptions, ExtractOptions, FeatureLevel, LevelInfo } from './features/backbone';
export { PRESETS, resolveBackbone, defaultCacheDir } from './features/presets';
export type { Preset } from './features/presets';
export { generateDemoDataset, describeDemoDataset, DEMO_CLASSES } from './demo';
export type { DemoDatasetOptions, DemoDatasetInfo } from './demo';
