// GEMM precision: 'fp32', or 'bf16' (bfloat16 GEMM inputs, float accumulation, float everything else;
// mixed precision for training: float master weights, gradients and Adam state), or 'auto' (bf16 where
// the CPU has AVX512-BF16 or AMX-BF16, fp32 elsewhere and on CUDA). Read from the CPU at run time: the
// same binary runs fp32 on CPUs without these instructions. The quality guard behind the defaults is
// `npm run bench:quality -- --precision-guard` (benchmarks/RESULTS.md).
import { HgadArgumentError, HgadError } from './errors';
import { native } from './native';

export type Precision = 'fp32' | 'bf16';
export type PrecisionChoice = Precision | 'auto';
export const PRECISION_CHOICES: readonly PrecisionChoice[] = ['fp32', 'bf16', 'auto'];

/**
 * Scoring (forward, inverse, score): 'auto', bf16 where the CPU has AVX512-BF16 or AMX-BF16. The guard
 * on the full test split with the recommended configuration held (RESULTS.md, "Precision guard on the
 * full test split"): image and pixel AUROC within 0.0005 of fp32, maps' Spearman 0.9994 / 0.9998 with
 * fp32's. Pass precision 'fp32' for bit-exact fp32 scores.
 */
export const DEFAULT_INFERENCE_PRECISION: PrecisionChoice = 'auto';
/**
 * Training: 'fp32'. Mixed precision passed the full-split guard too (within 0.003 of fp32), but at the
 * recommended width (128 channels) the flow's element-wise kernels dominate a step, so it bought no
 * time there (821 s vs 827 s): not worth moving every trained model off the fp32 reference for.
 */
export const DEFAULT_TRAINING_PRECISION: PrecisionChoice = 'fp32';

/** What this CPU offers for bf16 GEMMs, and the GEMM library of this build ('onednn' or 'openblas-static'). */
export interface CpuPrecisionInfo {
  avx512Bf16: boolean;
  amxBf16: boolean;
  /** Whether 'bf16' can run here (either of the two). */
  bf16: boolean;
  gemm: string;
}

export function cpuPrecision(): CpuPrecisionInfo {
  const query = native().NativeModel.cpuFeatures;
  if (typeof query !== 'function') return { avx512Bf16: false, amxBf16: false, bf16: false, gemm: '' };
  return query();
}

/** A precision option as given (undefined: `fallback`); anything else is an HgadArgumentError naming `parameter`. */
export function checkPrecision(parameter: string, value: unknown, fallback: PrecisionChoice): PrecisionChoice {
  if (value === undefined) return fallback;
  if (!(PRECISION_CHOICES as readonly unknown[]).includes(value)) {
    throw new HgadArgumentError(parameter, `one of ${PRECISION_CHOICES.map((p) => `'${p}'`).join(', ')}`, value);
  }
  return value as PrecisionChoice;
}

/**
 * The precision a choice runs at on `device`. 'bf16' where it cannot run (CUDA, or a CPU without
 * AVX512-BF16 and AMX-BF16) is an INVALID_ARGUMENT error naming `parameter`; 'auto' falls back to fp32.
 */
export function resolvePrecision(parameter: string, choice: PrecisionChoice, device: 'cpu' | 'cuda'): Precision {
  if (choice === 'fp32') return 'fp32';
  const why = device === 'cuda' ? 'the model runs on CUDA, where hgad computes in fp32'
    : cpuPrecision().bf16 ? undefined : 'this CPU has neither AVX512-BF16 nor AMX-BF16';
  if (why === undefined) return 'bf16';
  if (choice === 'auto') return 'fp32';
  throw new HgadError('INVALID_ARGUMENT', `${parameter} is 'bf16' but ${why} (use 'auto' to fall back to 'fp32')`, parameter);
}
