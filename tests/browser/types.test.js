// The package's TypeScript declarations against its implementation: tsc checks
// RelationExtractor (checkJs, `@implements`) and the worker files against index.d.ts and the
// wasm module's generated types, and a strict application (types/usage.ts) against index.d.ts;
// the method table (methods.js), from which WorkerExtractor's methods are made at run time,
// must list exactly the declared methods, each with `{signal}` where it takes one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { ROOT, THREADS_MISSING } from './harness.js';
import { METHODS } from '../../pkg/src/methods.js';

function tsc(project) {
  const run = spawnSync(process.execPath, [path.join(ROOT, 'tests/browser/node_modules/typescript/bin/tsc'), '-p', project], {
    cwd: path.join(ROOT, 'tests/browser'),
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, `tsc -p ${project}:\n${run.stdout}${run.stderr}`);
}

// The implementation imports the threaded build's glue (wasm-threads/tkre.js) for its types.
test('tsc: the implementation matches index.d.ts', { skip: THREADS_MISSING }, () => tsc('types/tsconfig.impl.json'));
test('tsc: a strict application type-checks against index.d.ts', () => tsc('types/tsconfig.json'));

test('the method table lists exactly the declared methods, with {signal} where it takes one', () => {
  const file = path.join(ROOT, 'pkg/src/index.d.ts');
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const declared = new Map(); // name -> parameter lists of its overloads
  ts.forEachChild(source, (node) => {
    if (!ts.isInterfaceDeclaration(node) || node.name.text !== 'ExtractorMethods') return;
    for (const member of node.members) {
      if (!ts.isMethodSignature(member)) continue;
      const name = member.name.getText(source);
      const params = member.parameters.map((p) => ({ name: p.name.getText(source), type: p.type?.getText(source) }));
      declared.set(name, [...(declared.get(name) ?? []), params]);
    }
  });
  assert.ok(declared.size > 0, 'index.d.ts declares ExtractorMethods');
  // dispose is each class's own (it ends the worker or frees the module), not a table entry.
  assert.deepEqual([...Object.keys(METHODS), 'dispose'].sort(), [...declared.keys()].sort());
  for (const [name, spec] of Object.entries(METHODS)) {
    for (const params of declared.get(name)) {
      const call = params.findIndex((p) => /CallOptions$/.test(p.type ?? ''));
      assert.equal(call, 'arity' in spec ? spec.arity : -1, `${name}: {signal} at argument ${spec.arity ?? 'none'}`);
    }
  }
});
