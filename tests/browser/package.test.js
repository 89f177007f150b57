// The two npm packages as they would be published: tkre-web refuses to pack without its built
// wasm, and both packs carry their licences and every file they need.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, THREADS_MISSING } from './harness.js';

function packedFiles(dir) {
  const pack = spawnSync('npm', ['pack', '--dry-run', '--json', '--silent'], { cwd: dir, encoding: 'utf8' });
  assert.equal(pack.status, 0, pack.stderr);
  return JSON.parse(pack.stdout)[0].files.map((f) => f.path);
}

test('npm pack of tkre-web refuses a package without the built wasm', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tkre-pack-'));
  mkdirSync(path.join(dir, 'pkg/scripts'), { recursive: true });
  cpSync(path.join(ROOT, 'pkg/scripts/prepack.js'), path.join(dir, 'pkg/scripts/prepack.js'));
  for (const licence of ['LICENSE-MIT', 'LICENSE-APACHE']) writeFileSync(path.join(dir, licence), 'licence');
  const run = spawnSync('node', ['scripts/prepack.js'], { cwd: path.join(dir, 'pkg'), encoding: 'utf8' });
  assert.equal(run.status, 1);
  assert.match(run.stderr, /wasm\/tkre\.js is missing; build it first with scripts\/dev\/build-wasm\.sh/);
  // With the single-thread build only, it still refuses, and passes on why the threaded one is missing.
  mkdirSync(path.join(dir, 'pkg/wasm'));
  for (const file of ['tkre.js', 'tkre_bg.wasm']) writeFileSync(path.join(dir, 'pkg/wasm', file), 'built');
  writeFileSync(path.join(dir, 'pkg/wasm-threads.missing'), 'it needs rust-src\n');
  const single = spawnSync('node', ['scripts/prepack.js'], { cwd: path.join(dir, 'pkg'), encoding: 'utf8' });
  assert.equal(single.status, 1);
  assert.match(single.stderr, /wasm-threads\/tkre\.js is missing; .* pack again \(it needs rust-src\)/);
});

test('the packed packages carry their licences, the wasm and the model files', { skip: THREADS_MISSING }, () => {
  const web = packedFiles(path.join(ROOT, 'pkg'));
  for (const file of ['wasm/tkre_bg.wasm', 'wasm/tkre.js', 'wasm-threads/tkre_bg.wasm', 'wasm-threads/tkre.js', 'src/thread-worker.js', 'src/index.js', 'src/index.d.ts', 'LICENSE-MIT', 'LICENSE-APACHE']) {
    assert.ok(web.includes(file), `tkre-web lacks ${file}: ${web.join(', ')}`);
  }
  const model = packedFiles(path.join(ROOT, 'models/default'));
  for (const file of ['manifest.json', 'config.json', 'model.safetensors', 'tokenizer.json', 'mention_head.json', 'index.js', 'index.d.ts', 'LICENSE']) {
    assert.ok(model.includes(file), `tkre-web-model-default lacks ${file}: ${model.join(', ')}`);
  }
});
