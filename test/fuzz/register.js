// Lets a plain `node` process require the project's TypeScript sources (lib/, test/fuzz/): each .ts file
// is transpiled on load, without type checking (jest and tsc check the types). Used by the fuzz child
// processes and `npm run fuzz`, which must not depend on a prior `npm run build:ts`.
'use strict';
const fs = require('node:fs');
const ts = require('typescript');

const compilerOptions = {
  module: ts.ModuleKind.CommonJS,
  target: ts.ScriptTarget.ES2022,
  esModuleInterop: true,
  sourceMap: false,
  inlineSourceMap: true,
};

require.extensions['.ts'] = function compileTs(module, filename) {
  const source = fs.readFileSync(filename, 'utf8');
  const { outputText } = ts.transpileModule(source, { compilerOptions, fileName: filename });
  module._compile(outputText, filename);
};
