// ESM entry point: the compiled CommonJS build, re-exported. Node reads the named exports tsc writes
// (exports.X = ... / Object.defineProperty(exports, 'X', ...)), so nothing is listed twice.
export * from '../dist/lib/index.js';
