// Jest runs each test file in its own vm realm, whose typed-array constructors differ from the ones
// native addons see: onnxruntime-node's outputs (main-realm Float32Array...) then fail the realm-local
// `instanceof` checks in onnxruntime-common ("A float32 tensor's data must be type of ..."). Outside jest
// there is a single realm and nothing of this applies. Test files that run onnxruntime opt in with
// `@jest-environment ./test/ort-environment.js`.
'use strict';
const { TestEnvironment } = require('jest-environment-node');

const SHARED = ['ArrayBuffer', 'Float32Array', 'Float64Array', 'Int8Array', 'Uint8Array', 'Uint8ClampedArray',
  'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'BigInt64Array', 'BigUint64Array'];

class OrtEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) this.global[name] = globalThis[name];
  }
}

module.exports = OrtEnvironment;
