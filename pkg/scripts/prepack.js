// `npm pack` / `npm publish` of tkre-web: refuses to pack without the built wasm (it is not in
// git: scripts/dev/build-wasm.sh writes pkg/wasm/ and the threaded pkg/wasm-threads/), and
// copies the licence files in.
import { copyFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
for (const file of ['wasm/tkre.js', 'wasm/tkre_bg.wasm', 'wasm-threads/tkre.js', 'wasm-threads/tkre_bg.wasm']) {
  const at = path.join(pkg, file);
  if (!existsSync(at) || statSync(at).size === 0) {
    // Bundlers resolve both builds' imports, so a package without the threaded one would not build.
    const missing = path.join(pkg, 'wasm-threads.missing');
    const why = file.startsWith('wasm-threads/') && existsSync(missing) ? ` (${readFileSync(missing, 'utf8').trim()})` : '';
    console.error(`tkre-web: ${file} is missing; build it first with scripts/dev/build-wasm.sh (from the repository root), then pack again${why}`);
    process.exit(1);
  }
}
for (const licence of ['LICENSE-MIT', 'LICENSE-APACHE']) {
  copyFileSync(path.join(pkg, '..', licence), path.join(pkg, licence));
}
