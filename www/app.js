// The demo page: a support set editor and a classifier over the tkre-web package, with the
// model in a Web Worker. Everything runs locally; the only requests are the page's own files
// and the model files.
import { createWorkerExtractor, createExtractor } from '/pkg/src/index.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const backend = params.get('backend') ?? 'auto';
const useWorker = params.get('worker') !== '0';
// A model from this page's own origin only: a crafted link must not feed the page a model
// (or files) from elsewhere.
const modelUrl = sameOriginModel(params.get('model'));

function sameOriginModel(requested) {
  const fallback = '/models/default/';
  if (!requested) return fallback;
  try {
    const url = new URL(requested, location.href);
    if (url.origin === location.origin) return url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`;
  } catch {
    // not a URL: fall through
  }
  queueMicrotask(() => showError(`?model= must name a model folder on this site; loading the default model instead`));
  return fallback;
}

let extractor = null;
let supportSet = { relations: [] };

function showError(e) {
  $('error').textContent = e ? (e.message ?? String(e)) : '';
}

/** Renders a marked sentence with highlighted entities (as DOM nodes, never as HTML). */
function renderMarked(container, example) {
  const text = typeof example === 'string' ? example : toMarked(example);
  const parts = text.split(/(\[E1\]|\[\/E1\]|\[E2\]|\[\/E2\])/);
  let current = null;
  for (const part of parts) {
    if (part === '[E1]') current = 'e1';
    else if (part === '[E2]') current = 'e2';
    else if (part === '[/E1]' || part === '[/E2]') current = null;
    else if (part) {
      const span = document.createElement('span');
      if (current) span.className = current;
      span.textContent = part;
      container.append(span);
    }
  }
}

/** A support-set example in any of its forms (docs/support-sets.md) as a marked sentence. */
function toMarked(example) {
  if (typeof example?.marked === 'string') return example.marked;
  if (Array.isArray(example?.tokens)) return fewRelToMarked(example);
  const { text, head, tail } = example ?? {};
  const valid = (span) => Number.isInteger(span?.start) && Number.isInteger(span?.end);
  if (typeof text !== 'string' || !valid(head) || !valid(tail)) return '(an example in a form this page cannot show)';
  const chars = Array.from(text);
  const marks = [[head.start, '[E1]'], [head.end, '[/E1]'], [tail.start, '[E2]'], [tail.end, '[/E2]']];
  marks.sort((a, b) => b[0] - a[0] || (b[1].startsWith('[/') ? -1 : 1));
  for (const [pos, m] of marks) chars.splice(Math.min(pos, chars.length), 0, m);
  return chars.join('');
}

/** A FewRel record ({tokens, h: [name, id, [[indexes]]], t}) as a marked sentence. */
function fewRelToMarked({ tokens, h, t }) {
  const tokensOut = tokens.map(String);
  const wrap = (entity, open, close) => {
    const indexes = entity?.[2]?.[0];
    if (!Array.isArray(indexes) || !indexes.length) return;
    const [first, last] = [indexes[0], indexes[indexes.length - 1]];
    if (!(first in tokensOut) || !(last in tokensOut)) return;
    tokensOut[first] = open + tokensOut[first];
    tokensOut[last] += close;
  };
  wrap(h, '[E1]', '[/E1]');
  wrap(t, '[E2]', '[/E2]');
  return tokensOut.join(' ');
}

/** Wraps the selection of a textarea in [E1]..[/E1] or [E2]..[/E2]. */
function markSelection(textarea, which) {
  const { selectionStart: s, selectionEnd: e, value } = textarea;
  if (s === e) {
    showError(`Select the ${which === 'E1' ? 'first (head)' : 'second (tail)'} entity's text first.`);
    return;
  }
  const cleaned = (str) => str.replaceAll(`[${which}]`, '').replaceAll(`[/${which}]`, '');
  const before = cleaned(value.slice(0, s));
  const inside = cleaned(value.slice(s, e));
  const after = cleaned(value.slice(e));
  textarea.value = `${before}[${which}]${inside}[/${which}]${after}`;
  showError(null);
}

async function refreshSet() {
  supportSet = JSON.parse(await extractor.saveSupportSet());
  renderRelations();
  // A result of the previous set would no longer be what Classify answers.
  clearResult();
}

function clearResult() {
  $('result').replaceChildren();
  window.tkreDemo.lastResult = null;
}

/** The query as it will be read: its entities highlighted under the box. */
function renderPreview() {
  const preview = $('query-preview');
  preview.replaceChildren();
  const text = $('query').value;
  if (text.includes('[E1]') || text.includes('[E2]')) renderMarked(preview, text);
}

function renderRelations() {
  const root = $('relations');
  root.replaceChildren();
  $('relation-count').textContent = `(${supportSet.relations.length})`;
  supportSet.relations.forEach((relation, r) => {
    const key = relation.key ?? relation.name;
    const box = document.createElement('div');
    box.className = 'relation';
    const title = document.createElement('h3');
    const count = relation.examples.length;
    title.textContent = `${relation.name ?? key} (${count === 0 ? 'no examples: classified by its text' : count})`;
    const removeRelation = document.createElement('button');
    removeRelation.className = 'remove';
    removeRelation.title = `Remove relation ${key}`;
    removeRelation.setAttribute('aria-label', `Remove relation ${key}`);
    removeRelation.textContent = '✕';
    removeRelation.onclick = () => act(async () => { await extractor.removeRelation(key); await refreshSet(); });
    title.append(removeRelation);
    // What the relation means, in words: fused with the examples (alone, it classifies zero-shot).
    const textRow = document.createElement('div');
    textRow.className = 'relation-text';
    const nameInput = document.createElement('input');
    nameInput.value = relation.name ?? '';
    nameInput.placeholder = 'Name, e.g. place of birth';
    nameInput.setAttribute('aria-label', `Name of ${key}`);
    nameInput.id = `relation-name-${r}`;
    const description = document.createElement('textarea');
    description.rows = 2;
    description.value = relation.description ?? '';
    description.placeholder = 'Description, e.g. the place where a person was born';
    description.setAttribute('aria-label', `Description of ${key}`);
    description.id = `relation-description-${r}`;
    const saveText = document.createElement('button');
    saveText.type = 'button';
    saveText.textContent = 'Save text';
    saveText.onclick = () => act(async () => {
      await extractor.setRelationText(key, { name: nameInput.value.trim() || null, description: description.value.trim() || null });
      await refreshSet();
    });
    textRow.append(nameInput, description, saveText);
    const list = document.createElement('ul');
    relation.examples.forEach((example, i) => {
      const li = document.createElement('li');
      const text = document.createElement('span');
      text.className = 'example-text';
      renderMarked(text, example);
      const remove = document.createElement('button');
      remove.className = 'remove';
      remove.title = 'Remove example';
      remove.setAttribute('aria-label', `Remove example ${i + 1} of ${key}`);
      remove.textContent = '✕';
      remove.onclick = () => act(async () => { await extractor.removeExample(key, i); await refreshSet(); });
      li.append(text, remove);
      list.append(li);
    });
    const input = document.createElement('textarea');
    input.rows = 2;
    input.placeholder = '[E1]head[/E1] … [E2]tail[/E2]';
    input.setAttribute('aria-label', `New example for ${key}`);
    input.id = `new-example-${r}`;
    const row = document.createElement('div');
    row.className = 'row';
    for (const which of ['E1', 'E2']) {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = which === 'E1' ? 'Mark head' : 'Mark tail';
      b.onclick = () => markSelection(input, which);
      row.append(b);
    }
    const add = document.createElement('button');
    add.type = 'button';
    add.textContent = 'Add example';
    add.onclick = () => act(async () => {
      await extractor.addExamples(key, [input.value.trim()]);
      await refreshSet();
    });
    row.append(add);
    box.append(title, textRow, list, input, row);
    root.append(box);
  });
}

/** A relation's display name: its name, else its key. */
function relationName(key) {
  const relation = supportSet.relations.find((r) => (r.key ?? r.name) === key);
  return relation?.name ?? key;
}

function renderResult(prediction, ms) {
  const root = $('result');
  root.replaceChildren();
  if (prediction.noneOfTheAbove) {
    const p = document.createElement('p');
    p.className = 'nota';
    p.textContent = `No relation (${(prediction.noneProbability * 100).toFixed(1)}%): the best match is below the threshold.`;
    root.append(p);
  }
  prediction.ranked.forEach((score, i) => {
    const row = document.createElement('div');
    row.className = `bar-row${i === 0 && !prediction.noneOfTheAbove ? ' best' : ''}`;
    const label = document.createElement('span');
    label.className = 'bar-label';
    label.textContent = relationName(score.relation);
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.style.width = `${(score.probability * 100).toFixed(1)}%`;
    bar.append(fill);
    const value = document.createElement('span');
    value.textContent = `${(score.probability * 100).toFixed(1)}%`;
    value.title = `similarity ${score.similarity.toFixed(3)}`;
    row.append(label, bar, value);
    root.append(row);
  });
  $('timing').textContent = `classified in ${ms.toFixed(0)} ms`;
}

async function act(fn) {
  showError(null);
  try {
    return await fn();
  } catch (e) {
    showError(e);
    return undefined;
  }
}

async function classify() {
  // Cleared first: after an error no earlier answer may stand as if it were this one's.
  clearResult();
  const threshold = $('threshold').value;
  await extractor.setNoneThreshold(threshold === '' ? null : Number(threshold));
  const started = performance.now();
  const prediction = await extractor.classify($('query').value.trim());
  const ms = performance.now() - started;
  renderResult(prediction, ms);
  window.tkreDemo.lastResult = { prediction, ms, backend: extractor.backend };
  return prediction;
}

async function loadExampleSet() {
  const response = await fetch('/examples/support_set.json');
  await extractor.loadSupportSet(await response.text());
  await refreshSet();
}

async function main() {
  $('status').textContent = 'Loading the model…';
  const onProgress = ({ status, stage, loaded, total, file, cached }) => {
    if (status === 'ready') return;
    $('progress').value = total ? loaded / total : 0;
    const size = total ? `${(loaded / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB` : `${(loaded / 1e6).toFixed(1)} MB`;
    const what = stage === 'wasm' ? 'the engine (wasm)' : file;
    $('status').textContent = `${cached ? 'Reading cached' : 'Downloading'} ${what}… ${size}`;
  };
  const create = useWorker ? createWorkerExtractor : createExtractor;
  extractor = await create({ modelUrl, backend, onProgress });
  $('progress').hidden = true;
  $('backend').textContent = `backend: ${extractor.backend} (${extractor.backendReason})`;
  $('model-name').textContent = extractor.manifest?.name ?? modelUrl;
  // Empty: the model's recommended threshold (its calibration), if it has one.
  const recommended = extractor.manifest?.calibration?.none_similarity;
  $('threshold').placeholder = recommended == null ? 'off' : `${recommended.toFixed(2)} (model)`;
  $('threshold').title = recommended == null
    ? 'empty: no threshold'
    : 'empty: the model\'s recommended threshold; -1 switches it off';
  $('status').textContent = 'Encoding the example support set…';
  await loadExampleSet();
  $('status').textContent = `Ready (${extractor.backend}).`;
  $('controls').disabled = false;
}

document.querySelectorAll('[data-mark]').forEach((b) => {
  b.onclick = () => {
    markSelection($(b.dataset.target), b.dataset.mark);
    renderPreview();
  };
});
$('query').addEventListener('input', renderPreview);
renderPreview();
// On a phone the relations fold away, so the sentence and its answer come first.
if (matchMedia('(max-width: 40rem)').matches) $('relations-details').open = false;
$('classify').onclick = () => act(classify);
$('add-relation').onsubmit = (event) => {
  event.preventDefault();
  const name = $('new-relation-name').value.trim();
  const description = $('new-relation-description').value.trim();
  const example = $('new-relation-example').value.trim();
  act(async () => {
    // A name alone is enough: the relation classifies by its text until examples are added.
    await extractor.addRelation(name, {
      name,
      description: description || undefined,
      examples: example ? [example] : undefined,
    });
    for (const id of ['new-relation-name', 'new-relation-description', 'new-relation-example']) $(id).value = '';
    await refreshSet();
  });
};
$('save-set').onclick = () => act(async () => {
  const blob = new Blob([await extractor.saveSupportSet()], { type: 'application/json' });
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = 'support-set.json';
  link.click();
  URL.revokeObjectURL(link.href);
});
// A button opens the file chooser: a hidden file input cannot be reached by keyboard.
$('load-set-button').onclick = () => $('load-set').click();
$('load-set').onchange = (event) => act(async () => {
  const file = event.target.files[0];
  event.target.value = ''; // the same file chosen again is a change too
  if (!file) return;
  await extractor.loadSupportSet(await file.text());
  await refreshSet();
});
$('reset-set').onclick = () => act(loadExampleSet);

window.tkreDemo = { classify: () => act(classify), lastResult: null };
window.tkreDemo.ready = main().catch((e) => {
  $('status').textContent = 'Could not start.';
  showError(e);
  throw e;
});
