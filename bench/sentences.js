// FewRel 1.0 val sentences for the browser benchmarks, round-robin over the relations.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../tests/browser/harness.js';

/** `count` sentences; `marked`: with [E1]..[/E1] / [E2]..[/E2] around the entities. */
export function fewrelSentences(count, { marked = true } = {}) {
  const data = JSON.parse(readFileSync(path.join(ROOT, '../shared/data/fewrel/val_wiki.json'), 'utf8'));
  const lists = Object.keys(data).sort().map((k) => data[k]);
  const out = [];
  for (let i = 0; out.length < count; i++) {
    const r = lists[i % lists.length][Math.floor(i / lists.length)];
    const words = r.tokens.slice();
    if (marked) {
      const [h0, h1] = [r.h[2][0][0], r.h[2][0].at(-1)];
      const [t0, t1] = [r.t[2][0][0], r.t[2][0].at(-1)];
      words[h0] = `[E1]${words[h0]}`;
      words[h1] = `${words[h1]}[/E1]`;
      words[t0] = `[E2]${words[t0]}`;
      words[t1] = `${words[t1]}[/E2]`;
    }
    out.push(words.join(' '));
  }
  return out;
}
