// Every bad input is a typed HgadError that names the parameter (lib/errors.ts), never a crash, a
// silent NaN or a changed model.
import {
  FeatureBatch, HgadArgumentError, HgadConfig, HgadError, HgadModel, HgadNonFiniteError,
} from '../lib';

/** The error a call throws synchronously or rejects with; fails the test if there is none. */
async function errorOf(fn: () => unknown): Promise<HgadError> {
  let error: unknown;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  if (error === undefined) throw new Error('expected an error, but the call succeeded');
  if (!(error instanceof HgadError)) throw new Error(`expected an HgadError, got ${String(error)}`);
  return error;
}

/** An argument error (from the TypeScript checks or the native ones) naming `parameter`. */
async function expectArgumentError(fn: () => unknown, parameter: string, message?: RegExp): Promise<HgadError> {
  const e = await errorOf(fn);
  expect({ code: e.code, parameter: e.parameter }).toEqual({ code: 'INVALID_ARGUMENT', parameter });
  expect(e.message).toContain(parameter);
  if (message) expect(e.message).toMatch(message);
  return e;
}

async function expectNonFinite(fn: () => unknown, parameter: string, index: number, what: string): Promise<void> {
  const e = await errorOf(fn);
  expect(e).toBeInstanceOf(HgadNonFiniteError);
  expect({ code: e.code, parameter: e.parameter, index: (e as HgadNonFiniteError).index })
    .toEqual({ code: 'NON_FINITE_INPUT', parameter, index });
  expect(e.message).toContain(`element ${index} is ${what}`);
}

const base: HgadConfig = {
  levels: [{ channels: 4 }, { channels: 6 }],
  classes: ['bottle', 'cable', 'grid'],
  centersPerClass: 3,
  couplingLayers: 2,
  posEmbedDim: 4,
  threads: 2,
};

function batch(channels: number, b = 2, h = 2, w = 3): FeatureBatch {
  const data = new Float32Array(b * h * w * channels);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37);
  return { batch: b, height: h, width: w, channels, data };
}

describe('HgadModel.create', () => {
  const cases: [string, unknown, string][] = [
    ['config not an object', null, 'config'],
    ['config an array', [], 'config'],
    ['levels missing', { classes: ['a'] }, 'config.levels'],
    ['levels empty', { ...base, levels: [] }, 'config.levels'],
    ['levels not an array', { ...base, levels: { channels: 4 } }, 'config.levels'],
    ['a level that is not an object', { ...base, levels: [null] }, 'config.levels[0]'],
    ['a level without channels', { ...base, levels: [{}] }, 'config.levels[0].channels'],
    ['channels 1', { ...base, levels: [{ channels: 1 }] }, 'config.levels[0].channels'],
    ['channels 1 in the second level', { ...base, levels: [{ channels: 4 }, { channels: 1 }] }, 'config.levels[1].channels'],
    ['channels 2.5', { ...base, levels: [{ channels: 2.5 }] }, 'config.levels[0].channels'],
    ['channels as a string', { ...base, levels: [{ channels: '4' }] }, 'config.levels[0].channels'],
    ['classes missing', { levels: [{ channels: 4 }] }, 'config.classes'],
    ['classes empty', { ...base, classes: [] }, 'config.classes'],
    ['classes duplicated', { ...base, classes: ['a', 'b', 'a'] }, 'config.classes[2]'],
    ['a class that is not a string', { ...base, classes: ['a', 3] }, 'config.classes[1]'],
    ['an empty class name', { ...base, classes: [''] }, 'config.classes[0]'],
    ['posEmbedDim 6', { ...base, posEmbedDim: 6 }, 'config.posEmbedDim'],
    ['posEmbedDim 0', { ...base, posEmbedDim: 0 }, 'config.posEmbedDim'],
    ['centersPerClass 0', { ...base, centersPerClass: 0 }, 'config.centersPerClass'],
    ['couplingLayers 1.5', { ...base, couplingLayers: 1.5 }, 'config.couplingLayers'],
    ['couplingLayers 0', { ...base, couplingLayers: 0 }, 'config.couplingLayers'],
    ['clamp -1', { ...base, clamp: -1 }, 'config.clamp'],
    ['clamp NaN', { ...base, clamp: NaN }, 'config.clamp'],
    ['threads 0', { ...base, threads: 0 }, 'config.threads'],
    ['threads 1.5', { ...base, threads: 1.5 }, 'config.threads'],
    ['seed -1', { ...base, seed: -1 }, 'config.seed'],
  ];
  test.each(cases)('%s', async (_label, config, parameter) => {
    const e = await expectArgumentError(() => HgadModel.create(config as HgadConfig), parameter);
    expect(e).toBeInstanceOf(HgadArgumentError);
    expect(e.message).toMatch(/^Expected .* but received /);
  });

  test('the message says what was received', async () => {
    const e = await expectArgumentError(() => HgadModel.create({ ...base, posEmbedDim: 6 }), 'config.posEmbedDim');
    expect(e.message).toContain('number 6');
  });
});

describe('operations on a model', () => {
  let model: HgadModel;
  let snapshot: Map<string, Float32Array>;
  const x0 = batch(4);
  const labels = Int32Array.from([0, 2]);

  beforeAll(async () => {
    model = HgadModel.create(base);
    // A couple of steps so the optimiser state is not all zeros either.
    await model.trainStep(0, x0, labels, { phase: 1, lr: 1e-2 });
    await model.trainStep(1, batch(6), labels, { phase: 2, lr: 1e-2 });
    snapshot = new Map();
    for (const t of model.tensorInfo()) snapshot.set(t.name, await model.getTensor(t.name));
  });

  describe('forward', () => {
    test('wrong channels', () => expectArgumentError(() => model.forward(0, batch(6)), 'x.channels'));
    test('channels of the other level', () => expectArgumentError(() => model.forward(1, batch(4)), 'x.channels'));
    test('data length mismatch', () =>
      expectArgumentError(() => model.forward(0, { ...x0, data: new Float32Array(x0.data.length - 1) }), 'x.data'));
    test('shape that does not match the data', () =>
      expectArgumentError(() => model.forward(0, { ...x0, height: 3 }), 'x.data'));
    test('data a Float64Array', () =>
      expectArgumentError(() => model.forward(0, { ...x0, data: Float64Array.from(x0.data) as unknown as Float32Array }), 'x.data'));
    test('data a plain array', () =>
      expectArgumentError(() => model.forward(0, { ...x0, data: Array.from(x0.data) as unknown as Float32Array }), 'x.data'));
    test('data missing', () =>
      expectArgumentError(() => model.forward(0, { ...x0, data: undefined as unknown as Float32Array }), 'x.data'));
    test('batch 0', () => expectArgumentError(() => model.forward(0, { ...x0, batch: 0, data: new Float32Array(0) }), 'x.batch'));
    test('height -1', () => expectArgumentError(() => model.forward(0, { ...x0, height: -1 }), 'x.height'));
    test('width 1.5', () => expectArgumentError(() => model.forward(0, { ...x0, width: 1.5 }), 'x.width'));
    test('x not an object', () => expectArgumentError(() => model.forward(0, null as unknown as FeatureBatch), 'x'));
    test.each([2, -1, 0.5, '0', NaN])('level %p', (level) =>
      expectArgumentError(() => model.forward(level as number, x0), 'level'));
  });

  describe('non-finite input', () => {
    const poisoned = (index: number, value: number): FeatureBatch => {
      const b = batch(4);
      b.data[index] = value;
      return b;
    };
    test('NaN in forward', () => expectNonFinite(() => model.forward(0, poisoned(7, NaN)), 'x.data', 7, 'NaN'));
    test('Infinity in forward', () =>
      expectNonFinite(() => model.forward(0, poisoned(30, Infinity)), 'x.data', 30, 'Infinity'));
    test('-Infinity in score', () =>
      expectNonFinite(() => model.score(0, poisoned(47, -Infinity)), 'x.data', 47, '-Infinity'));
    test('NaN in trainStep', () =>
      expectNonFinite(() => model.trainStep(0, poisoned(0, NaN), labels, { phase: 2, lr: 1e-2 }), 'x.data', 0, 'NaN'));
    test('NaN in gradients', () =>
      expectNonFinite(() => model.gradients(0, poisoned(13, NaN), labels), 'x.data', 13, 'NaN'));
    test('finite features too large for the flow are rejected, not scored as NaN', async () => {
      // 1e30 maps to a finite z whose squared distances overflow; 3e38 overflows the flow itself.
      const cases: [(b: FeatureBatch) => Promise<unknown>, number][] = [
        [(b) => model.score(0, b), 1e30], [(b) => model.forward(0, b), 3e38]];
      for (const [call, value] of cases) {
        const e = await expectArgumentError(() => call(poisoned(9, value)), 'x.data');
        expect(e.message).toMatch(/vector 2 is not finite/);
      }
    });
    test('a rejected call is a rejected promise, not a synchronous throw', async () => {
      const p = model.forward(0, { ...x0, channels: 5 });
      expect(p).toBeInstanceOf(Promise);
      await expect(p).rejects.toBeInstanceOf(HgadArgumentError);
    });
    test('Infinity in inverse', () => {
      const z = new Float32Array(2 * 2 * 3 * 4);
      z[5] = Infinity;
      return expectNonFinite(() => model.inverse(0, z, { batch: 2, height: 2, width: 3 }), 'z', 5, 'Infinity');
    });
  });

  describe('score', () => {
    test.each([3, -1, 1.5, NaN])('classIndex %p out of range', (c) =>
      expectArgumentError(() => model.score(0, x0, c), 'classIndex'));
    test('unknown class name', async () => {
      const e = await expectArgumentError(() => model.score(0, x0, 'zebra'), 'classIndex');
      expect(e.message).toContain('zebra');
    });
    test('Int32Array of the wrong length', () =>
      expectArgumentError(() => model.score(0, x0, Int32Array.from([0, 1, 2])), 'classIndex'));
    test('Int32Array with one value per vector instead of per image', () =>
      expectArgumentError(() => model.score(0, x0, new Int32Array(12)), 'classIndex'));
    test('Int32Array with an out-of-range value', () =>
      expectArgumentError(() => model.score(0, x0, Int32Array.from([0, 3])), 'classIndex[1]'));
    test('plain array', () =>
      expectArgumentError(() => model.score(0, x0, [0, 1] as unknown as Int32Array), 'classIndex'));
  });

  describe('trainStep and gradients', () => {
    const opts = { phase: 1 as const, lr: 1e-2 };
    test('labels of the wrong length', () =>
      expectArgumentError(() => model.trainStep(0, x0, Int32Array.from([0, 1, 2]), opts), 'labels'));
    test('labels not an Int32Array', () =>
      expectArgumentError(() => model.trainStep(0, x0, [0, 1] as unknown as Int32Array, opts), 'labels'));
    test('labels a Float32Array', () =>
      expectArgumentError(() => model.trainStep(0, x0, Float32Array.from([0, 1]) as unknown as Int32Array, opts), 'labels'));
    test('an out-of-range label value (checked natively)', async () => {
      const e = await expectArgumentError(() => model.trainStep(0, x0, Int32Array.from([0, 3]), opts), 'labels');
      expect(e.message).toMatch(/element 1 is 3/);
    });
    test('a negative per-vector label', async () => {
      const perVector = new Int32Array(12);
      perVector[9] = -1;
      const e = await expectArgumentError(() => model.trainStep(0, x0, perVector, opts), 'labels');
      expect(e.message).toMatch(/element 9 is -1/);
    });
    test('an out-of-range label in gradients()', () =>
      expectArgumentError(() => model.gradients(0, x0, Int32Array.from([7, 0])), 'labels'));
    test('phase 3', () =>
      expectArgumentError(() => model.trainStep(0, x0, labels, { phase: 3 as 1, lr: 1e-2 }), 'options.phase'));
    test('options missing', () =>
      expectArgumentError(() => model.trainStep(0, x0, labels, undefined as unknown as typeof opts), 'options'));
    test.each([NaN, -1e-3, Infinity, 1000, '0.1'])('lr %p', (lr) =>
      expectArgumentError(() => model.trainStep(0, x0, labels, { phase: 1, lr: lr as number }), 'options.lr'));
    test.each<[string, unknown, string]>([
      ['options missing', undefined, 'options'],
      ['an unknown key', { phase: 1, lr: 1e-2, momentum: 0.9 }, 'options.momentum'],
      ['phase 3', { phase: 3, lr: 1e-2 }, 'options.phase'],
      ['lr NaN', { phase: 1, lr: NaN }, 'options.lr'],
    ])('trainStepLatent checks its options as trainStep does: %s', async (_label, options, parameter) => {
      const logDet = new Float32Array(x0.batch * x0.height * x0.width);
      await expectArgumentError(() => model.trainStepLatent(0, x0, logDet, labels, options as typeof opts), parameter);
      await expectArgumentError(() => model.trainStep(0, x0, labels, options as typeof opts), parameter);
    });
    test('an unknown loss term in the weights', async () => {
      const e = await expectArgumentError(() => model.gradients(0, x0, labels, { weights: { Lq: 1 } as never }), 'options.weights');
      expect(e.message).toContain('Lq');
    });
    test('a non-finite loss weight', () =>
      expectArgumentError(() => model.gradients(0, x0, labels, { weights: { Lz: NaN } }), 'options.weights.Lz'));
  });

  describe('inverse', () => {
    const z = new Float32Array(2 * 2 * 3 * 4);
    test('shape missing', () =>
      expectArgumentError(() => model.inverse(0, z, undefined as unknown as { batch: number; height: number; width: number }), 'shape'));
    test('shape.batch 0', () => expectArgumentError(() => model.inverse(0, z, { batch: 0, height: 2, width: 3 }), 'shape.batch'));
    test('shape.width 2.5', () => expectArgumentError(() => model.inverse(0, z, { batch: 2, height: 2, width: 2.5 }), 'shape.width'));
    test('shape that does not match z', () =>
      expectArgumentError(() => model.inverse(0, z, { batch: 2, height: 3, width: 3 }), 'z.data'));
    test('z of the other level', () => expectArgumentError(() => model.inverse(1, z, { batch: 2, height: 2, width: 3 }), 'z.data'));
    test('z a Float64Array', () =>
      expectArgumentError(() => model.inverse(0, new Float64Array(24) as unknown as Float32Array, { batch: 2, height: 2, width: 3 }), 'z.data'));
    test('level out of range', () => expectArgumentError(() => model.inverse(5, z, { batch: 2, height: 2, width: 3 }), 'level'));
  });

  describe('setTensor', () => {
    test('NaN in the data', async () => {
      const mu = new Float32Array(3 * 4).fill(0.5);
      mu[6] = NaN;
      await expectNonFinite(() => model.setTensor('levels.0.mu', mu), 'levels.0.mu', 6, 'NaN');
    });
    test('Infinity in the data', async () => {
      const psi = new Float32Array(3 * 3);
      psi[8] = -Infinity;
      await expectNonFinite(() => model.setTensor('levels.1.psi', psi), 'levels.1.psi', 8, '-Infinity');
    });
    test('wrong length', async () => {
      const e = await errorOf(() => model.setTensor('levels.0.mu', new Float32Array(11)));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.parameter).toBeDefined();
      expect(e.message).toMatch(/12/);
    });
    test('data not a Float32Array', async () => {
      const e = await errorOf(() => model.setTensor('levels.0.mu', new Float64Array(12) as unknown as Float32Array));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.parameter).toBeDefined();
    });
    test('unknown tensor names (getTensor and setTensor)', async () => {
      for (const name of ['levels.0.nothing', 'levels.2.mu', 'optimizer.levels.0.m.blocks.0.rotation', 'mu']) {
        for (const call of [() => model.setTensor(name, new Float32Array(12)), () => model.getTensor(name)]) {
          const e = await errorOf(call);
          expect({ name, code: e.code, parameter: e.parameter }).toEqual({ name, code: 'INVALID_ARGUMENT', parameter: 'name' });
          expect(e.message).toContain(name);
        }
      }
    });
    test('name not a string', () =>
      expectArgumentError(() => model.getTensor(3 as unknown as string), 'name'));
  });

  // Runs last (jest runs the tests of a file in order).
  test('after all of the above the model is unchanged and still works', async () => {
    for (const [name, t] of snapshot) {
      const now = await model.getTensor(name);
      expect({ name, same: Buffer.from(now.buffer).equals(Buffer.from(t.buffer)) }).toEqual({ name, same: true });
    }
    const s = await model.score(0, x0, 'grid');
    expect(s.logp.length).toBe(12);
    expect(s.logp.every(Number.isFinite)).toBe(true);
    expect(Array.from(s.classIndex)).toEqual([2, 2]);
    const l = await model.trainStep(1, batch(6), labels, { phase: 2, lr: 1e-3 });
    expect(Number.isFinite(l.loss)).toBe(true);
  });
});
