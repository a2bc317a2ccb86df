/**
 * Typed errors. Every error hgad throws is an HgadError with a stable `code`; errors about an argument
 * also name the `parameter`, what was expected and what was received, so callers can react to them
 * without parsing messages.
 */
export type HgadErrorCode =
  | 'INVALID_ARGUMENT' // a value of the wrong type, range or shape
  | 'NON_FINITE_INPUT' // NaN or Inf where finite numbers are required
  | 'MODEL_FILE' // a model file that is truncated, altered or not an hgad file
  | 'MODEL_STATE' // the model's own parameters cannot be used (damaged or diverged), not the caller's input
  | 'IO' // the file system refused an operation
  | 'NATIVE' // the native core reported a failure
  | 'ABORTED' // the caller's AbortSignal stopped the operation
  | 'QUEUE'; // the job queue (Redis, BullMQ) could not be reached, or lost or refused a job

/** Every HgadErrorCode, for code that checks errors at run time (the fuzz harness). */
export const HGAD_ERROR_CODES: readonly HgadErrorCode[] = ['INVALID_ARGUMENT', 'NON_FINITE_INPUT', 'MODEL_FILE', 'MODEL_STATE',
  'IO', 'NATIVE', 'ABORTED', 'QUEUE'];

export class HgadError extends Error {
  readonly code: HgadErrorCode;
  readonly parameter?: string;

  constructor(code: HgadErrorCode, message: string, parameter?: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    if (parameter !== undefined) this.parameter = parameter;
  }
}

/** A bad argument: names the parameter, what it must be and what it was. */
export class HgadArgumentError extends HgadError {
  constructor(parameter: string, expected: string, received: unknown) {
    super('INVALID_ARGUMENT', `Expected ${expected} for ${parameter} but received ${describe(received)}`, parameter);
  }
}

export class HgadNonFiniteError extends HgadError {
  readonly index: number;
  constructor(parameter: string, index: number, value: number) {
    super('NON_FINITE_INPUT', `Expected finite numbers in ${parameter} but element ${index} is ${value}`, parameter);
    this.index = index;
  }
}

export class HgadModelFileError extends HgadError {
  readonly path: string;
  constructor(path: string, problem: string) {
    super('MODEL_FILE', `Invalid hgad model file ${path}: ${problem}`, 'path');
    this.path = path;
  }
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return value.length > 60 ? `string "${value.slice(0, 57)}..."` : `string "${value}"`;
  if (typeof value === 'number') return `number ${value}`;
  if (typeof value === 'bigint' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  if (Array.isArray(value)) return `array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) {
    const ctor = (value as object).constructor.name;
    const length = (value as unknown as { length?: number }).length;
    return length === undefined ? ctor : `${ctor} of length ${length}`;
  }
  if (typeof value === 'function') return 'function';
  return `object ${(value as object).constructor?.name ?? 'Object'}`;
}
