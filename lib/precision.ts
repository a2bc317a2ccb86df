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
 * Scoring (forward, inverse, score): 'fp32'. The guard's run on this project's machine (RESULTS.md,
 * "bench:quality --precision-guard") kept the maps (Spearman >= 0.9999) and the pixel AUROC, but the
 * image AUROC of its short run moved by one flipped pair of its 32 test images (0.006 > 0.002), so
 * bf16 stays opt-in ('auto' or 'bf16') until a run on the full test split holds.
 */
export const DEFAULT_INFERENCE_PRECISION: PrecisionChoice = 'fp32';
/**
 * Training: 'fp32'. The guard's mixed-precision arm kept the pixel AUROC (0.0004 from fp32) but its
 * image AUROC, on the same 32 test images, came out 0.019 higher: outside the 0.005 band either way.
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
