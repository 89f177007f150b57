// webpack 5, as a user's app would configure it: nothing for tkre-web beyond an ES-module
// output (the package's worker is an ES module). webpack finds the worker, the wasm and the
// default model's files from their `new URL(..., import.meta.url)` forms and copies them.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export default {
  mode: 'production',
  entry: './main.js',
  output: { path: path.join(here, 'dist-webpack'), filename: 'main.js', module: true, clean: true },
  experiments: { outputModule: true },
  performance: { hints: false },
};
