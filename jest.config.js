/** @type {import('jest').Config} */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: './test/ort-environment.js',
  roots: ['<rootDir>/test'],
  testTimeout: 120000,
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }] },
};
