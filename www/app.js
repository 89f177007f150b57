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
  // A result of the previous set would no longer be what Classify or Extract answers.
  clearResult();
  clearDocumentResult();
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

function showBackend() {
  const threads = `${extractor.threads} thread${extractor.threads === 1 ? '' : 's'}`;
  $('backend').textContent = `backend: ${extractor.backend} (${extractor.backendReason}) · ${threads}`;
  $('backend').title = extractor.threadsReason;
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
  extractor = await create({ modelUrl, backend, onProgress, onBackendChange: showBackend });
  $('progress').hidden = true;
  showBackend();
  $('model-name').textContent = extractor.manifest?.name ?? modelUrl;
  // Empty: the model's recommended threshold (its calibration), if it has one.
  const recommended = extractor.manifest?.calibration?.none_similarity;
  $('threshold').placeholder = recommended == null ? 'off' : `${recommended.toFixed(2)} (model)`;
  $('threshold').title = recommended == null
    ? 'empty: no threshold'
    : 'empty: the model\'s recommended threshold; -1 switches it off';
  $('document-threshold').value = String(recommended ?? 0.5);
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

// --- Document view: extraction from a whole text ---

/** Code-point slicing: every offset of the package counts Unicode code points. */
const codePoints = (text) => Array.from(text);
/** UTF-16 index (textarea selections) to a code-point offset. */
const toCodePoint = (text, index) => codePoints(text.slice(0, index)).length;

const documentState = {
  /** The text the last extraction read, and what it found (every pair: threshold off). */
  text: null,
  chars: null,
  extraction: null,
  /** The mentions after your corrections (null: the extractor finds them). */
  edited: null,
  controller: null,
};

function showDocumentError(e) {
  $('document-error').textContent = e ? (e.message ?? String(e)) : '';
}

/** A text that is mostly control or replacement characters is not a document. */
function junkReason(text) {
  const chars = codePoints(text);
  if (!chars.length) return null;
  const bad = chars.filter((c) => c === '\uFFFD' || /[\u0000-\u0008\u000E-\u001F]/.test(c)).length;
  return bad / chars.length > 0.1
    ? `${Math.round((100 * bad) / chars.length)}% of it is control or undecodable characters: it does not look like text. Open a plain-text (.txt, UTF-8) file.`
    : null;
}

function documentThreshold() {
  return Number($('document-threshold').value);
}

/** The triples at the slider's threshold, best first (ties in document order). */
function visibleTriples() {
  const triples = documentState.extraction?.triples ?? [];
  const t = documentThreshold();
  return triples
    .map((triple, order) => ({ triple, order }))
    .filter(({ triple }) => triple.similarity >= t)
    .sort((a, b) => b.triple.score - a.triple.score || a.order - b.order)
    .map(({ triple }) => triple);
}

/** A span of the extracted text, with its head and tail (if given) highlighted. */
function renderSpan(container, span, head, tail) {
  const chars = documentState.chars;
  let at = span.start;
  for (const [entity, cls] of [[head, 'e1'], [tail, 'e2']].filter(([e]) => e).sort((a, b) => a[0].start - b[0].start)) {
    container.append(chars.slice(at, entity.start).join(''));
    const mark = document.createElement('span');
    mark.className = cls;
    mark.textContent = chars.slice(entity.start, entity.end).join('');
    container.append(mark);
    at = entity.end;
  }
  container.append(chars.slice(at, span.end).join(''));
}

function currentMentions() {
  return documentState.edited ?? documentState.extraction?.mentions ?? [];
}

function renderMentions() {
  const view = $('mentions-view');
  view.replaceChildren();
  const chars = documentState.chars;
  // Outer mentions before the ones nested in them ("English soprano", then "soprano").
  const mentions = [...currentMentions()].sort((a, b) => a.start - b.start || b.end - a.end);
  $('mention-count').textContent = `(${mentions.length})`;
  // The open mentions, innermost last; each writes its text up to `at` as it goes.
  const open = [{ node: view, end: chars.length, at: 0 }];
  const closeUpTo = (position) => {
    while (open.length > 1 && open[open.length - 1].end <= position) {
      const done = open.pop();
      done.node.append(chars.slice(done.at, done.end).join(''));
      open[open.length - 1].at = done.end;
    }
  };
  for (const mention of mentions) {
    closeUpTo(mention.start);
    const parent = open[open.length - 1];
    if (mention.start < parent.at || mention.end > parent.end) continue; // crossing: not shown
    parent.node.append(chars.slice(parent.at, mention.start).join(''));
    const element = mentionElement(mention, chars);
    parent.node.append(element);
    open.push({ node: element, end: mention.end, at: mention.start });
  }
  closeUpTo(Infinity);
  view.append(chars.slice(open[0].at).join(''));
}

/** A mention in the document view: a click (or Enter) removes it, not the one around it. */
function mentionElement(mention, chars) {
  const element = document.createElement('span');
  const source = mention.source ?? 'marked';
  const text = chars.slice(mention.start, mention.end).join('');
  element.className = `mention ${source}`;
  element.setAttribute('role', 'button');
  element.tabIndex = 0;
  element.title = `${source} mention: click to remove`;
  element.setAttribute('aria-label', `Remove mention ${text}`);
  const remove = (event) => {
    event.stopPropagation();
    event.preventDefault();
    editMentions(currentMentions().filter((m) => m.start !== mention.start || m.end !== mention.end));
  };
  element.onclick = remove;
  element.onkeydown = (event) => {
    if (event.key === 'Enter' || event.key === ' ') remove(event);
  };
  return element;
}

function renderTriples() {
  const body = $('triples').querySelector('tbody');
  body.replaceChildren();
  const triples = visibleTriples();
  const all = documentState.extraction?.triples.length ?? 0;
  $('triple-count').textContent = `(${triples.length} of ${all} pairs above the threshold)`;
  $('document-threshold-value').textContent = documentThreshold().toFixed(2);
  triples.forEach((triple, i) => {
    const row = document.createElement('tr');
    const cell = (text) => {
      const td = document.createElement('td');
      td.textContent = text;
      row.append(td);
      return td;
    };
    cell(`${(triple.score * 100).toFixed(1)}%`).title = `similarity ${triple.similarity.toFixed(3)}`;
    cell(triple.head.text).className = 'e1';
    cell(relationName(triple.relation));
    cell(triple.tail.text).className = 'e2';
    const show = document.createElement('button');
    show.type = 'button';
    show.className = 'link';
    show.textContent = `characters ${triple.sentence.start}–${triple.sentence.end}`;
    show.setAttribute('aria-label', `Show the sentence of triple ${i + 1}`);
    show.onclick = () => showTripleSentence(triple);
    cell('').append(show);
    row.onclick = (event) => { if (event.target !== show) showTripleSentence(triple); };
    body.append(row);
  });
  window.tkreDemo.extraction = documentState.extraction
    ? { ...documentState.extraction, threshold: documentThreshold(), visible: triples }
    : null;
}

function showTripleSentence(triple) {
  const out = $('triple-sentence');
  out.replaceChildren();
  renderSpan(out, triple.sentence, triple.head, triple.tail);
}

function clearDocumentResult() {
  documentState.extraction = null;
  $('document-result').hidden = true;
  $('triple-sentence').replaceChildren();
  window.tkreDemo.extraction = null;
}

async function extractDocument() {
  showDocumentError(null);
  documentState.controller?.abort();
  const text = $('document').value;
  if (!text.trim()) throw new Error('The document is empty: paste text or open a .txt file.');
  const junk = junkReason(text);
  if (junk) throw new Error(junk);
  if (text !== documentState.text) {
    // A changed text: offsets of earlier corrections no longer point at the same words.
    documentState.edited = null;
    clearDocumentResult();
  }
  const controller = new AbortController();
  documentState.controller = controller;
  const options = documentState.edited
    ? { mentions: documentState.edited.map(({ start, end }) => ({ start, end })), propose: false, threshold: -1 }
    : { threshold: -1 };
  const progress = $('extract-progress');
  progress.hidden = false;
  progress.value = 0;
  $('cancel-extract').hidden = false;
  const started = performance.now();
  try {
    const extraction = await extractor.extract(text, options, {
      signal: controller.signal,
      onProgress: ({ done, total }) => { progress.value = total ? done / total : 1; },
    });
    documentState.text = text;
    documentState.chars = codePoints(text);
    documentState.extraction = extraction;
    $('document-result').hidden = false;
    renderMentions();
    renderTriples();
    const ms = performance.now() - started;
    $('timing').textContent = `extracted ${extraction.sentences.length} sentences in ${(ms / 1000).toFixed(1)} s`;
  } finally {
    progress.hidden = true;
    $('cancel-extract').hidden = true;
    if (documentState.controller === controller) documentState.controller = null;
  }
}

async function documentAct(fn) {
  showDocumentError(null);
  try {
    return await fn();
  } catch (e) {
    showDocumentError(e.name === 'AbortError' ? 'Extraction cancelled.' : e);
    return undefined;
  }
}

function editMentions(mentions) {
  documentState.edited = mentions.map(({ start, end, text }) => ({ start, end, text, source: 'marked' }));
  return documentAct(extractDocument);
}

function download(name, type, content) {
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([content], { type }));
  link.download = name;
  link.click();
  URL.revokeObjectURL(link.href);
}

const csvField = (value) => {
  const s = String(value);
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
};

function triplesCsv(triples) {
  const header = ['head', 'head_start', 'head_end', 'relation', 'tail', 'tail_start', 'tail_end', 'score', 'similarity', 'sentence_start', 'sentence_end', 'sentence'];
  const rows = triples.map((t) => [
    t.head.text, t.head.start, t.head.end, relationName(t.relation), t.tail.text, t.tail.start, t.tail.end,
    t.score.toFixed(4), t.similarity.toFixed(4), t.sentence.start, t.sentence.end,
    documentState.chars.slice(t.sentence.start, t.sentence.end).join(''),
  ]);
  return [header, ...rows].map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
}

$('extract').onclick = () => documentAct(extractDocument);
$('cancel-extract').onclick = () => documentState.controller?.abort();
$('document-threshold').addEventListener('input', () => renderTriples());
$('open-document-button').onclick = () => $('open-document').click();
$('open-document').onchange = (event) => documentAct(async () => {
  const file = event.target.files[0];
  event.target.value = '';
  if (!file) return;
  // Read here with the File API: the file never leaves the page.
  const text = await file.text();
  const junk = junkReason(text);
  if (junk) throw new Error(`${file.name}: ${junk}`);
  $('document').value = text;
  await extractDocument();
});
$('add-mention').onclick = () => documentAct(async () => {
  const area = $('document');
  if (documentState.text === null || area.value !== documentState.text) {
    throw new Error('Extract the document first: mentions are marked on the text that was extracted.');
  }
  let [s, e] = [area.selectionStart, area.selectionEnd];
  while (s < e && /\s/.test(area.value[s])) s += 1;
  while (e > s && /\s/.test(area.value[e - 1])) e -= 1;
  if (s === e) throw new Error('Select the missing mention in the document box first.');
  const mention = { start: toCodePoint(area.value, s), end: toCodePoint(area.value, e) };
  // Mentions may nest in the new one or hold it; one crossing it (or the same span) goes.
  const nests = (a, b) => a.start <= b.start && b.end <= a.end;
  const kept = currentMentions().filter((m) => (m.end <= mention.start || m.start >= mention.end
    || nests(m, mention) || nests(mention, m)) && (m.start !== mention.start || m.end !== mention.end));
  await editMentions([...kept, mention]);
});
$('reset-mentions').onclick = () => documentAct(async () => {
  documentState.edited = null;
  await extractDocument();
});
$('export-json').onclick = () => {
  const { extraction } = documentState;
  if (!extraction) return;
  const json = { threshold: documentThreshold(), sentences: extraction.sentences, mentions: currentMentions(), triples: visibleTriples() };
  download('triples.json', 'application/json', `${JSON.stringify(json, null, 2)}\n`);
};
$('export-csv').onclick = () => {
  if (documentState.extraction) download('triples.csv', 'text/csv', triplesCsv(visibleTriples()));
};

window.tkreDemo = { classify: () => act(classify), extract: () => documentAct(extractDocument), lastResult: null, extraction: null };
window.tkreDemo.ready = main().catch((e) => {
  $('status').textContent = 'Could not start.';
  showError(e);
  throw e;
});
