#!/usr/bin/env python3
"""N-way K-shot prototype evaluation of frozen all-MiniLM-L6-v2 relation
representations on FewRel val_wiki.json (16 relations x 700), numpy only.

* Every instance is marked and tokenized as in numpy_bert.tokenize_marked,
  encoded once (float64 compute; sorted by length, batches of 32), and the
  five L2-normalised parts (head_marker, tail_marker, head_mean, tail_mean,
  sentence_mean) are cached as float32 in
  /root/.cache/tkre/reference/fewrel-parts-<key>.npz, so a second run only
  does the episodes.
* Representations (numpy_bert.REPRESENTATIONS) concatenate parts.
* Episodes: for each setting (N, K) a fresh numpy default_rng(seed=1); per
  episode: N distinct relations = rng.choice(R, N, replace=False); then for
  each chosen relation, in order, K + 1 distinct instances
  = rng.choice(n_rel, K + 1, replace=False): the first K are the support,
  the last the query.  The same episodes are used for every representation.
* Prototype = mean of the K support vectors; prediction = argmin squared
  Euclidean distance (ties -> lowest index); accuracy over N * episodes
  queries; ci95 = 1.96 * std(per-episode accuracy, ddof=0) / sqrt(episodes).

Writes reports/reference-fewrel.json ({representation: {"N-K": {"accuracy",
"ci95"}}}, accuracies as fractions) and prints a markdown table (percent).

With --relation-text FILE (pid2name.json's {id: [name, description]}), each relation's text
"name: description" is embedded once (mean of all tokens, L2-normalised) and, for the default
representation, joins the prototype as w more examples whose every part is that embedding:
prototype = (sum of K support vectors + w [t|t|t]) / (K + w), with w from how well the texts
classify the episode's support examples (evaluate_with_text); K = 0 is the text alone. Those
rows, on the same episodes plus 5-way and 10-way 0-shot, go to --text-report.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see numpy_bert.py

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy_bert as nb  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_DATA = os.environ.get("TKRE_FEWREL_VAL", "/work/shared/data/fewrel/val_wiki.json")
DEFAULT_CACHE = "/root/.cache/tkre/reference"
DEFAULT_REPORT = os.path.join(REPO, "reports", "reference-fewrel.json")
SETTINGS = [(5, 1), (5, 5), (10, 1), (10, 5)]
REP_ORDER = ["markers", "entity_mean", "entity_mean_sentence", "markers_sentence", "sentence"]
CACHE_VERSION = "fewrel-parts-v1"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def encode_dataset(model, data, batch_size=32):
    relations = sorted(data)
    items, labels, inst_index = [], [], []
    skipped = {"overlap": 0, "too_long": 0, "empty_span": 0}
    for r, rel in enumerate(relations):
        for j, rec in enumerate(data[rel]):
            try:
                info = nb.tokenize_marked(model.tokenizer, rec)
            except nb.SkipRecord as e:
                skipped[str(e)] += 1
                continue
            items.append(info)
            labels.append(r)
            inst_index.append(j)
    n = len(items)
    lengths = np.array([len(it["ids"]) for it in items])
    log(f"{n} instances kept, skipped {skipped}; word pieces: mean {lengths.mean():.1f}, "
        f"max {lengths.max()}, total {lengths.sum()}")
    order = np.argsort(lengths, kind="stable")
    parts = np.zeros((n, len(nb.PART_NAMES), model.hidden), dtype=np.float32)
    n_batches = (n + batch_size - 1) // batch_size
    t0 = time.time()
    for b in range(n_batches):
        idx = order[b * batch_size:(b + 1) * batch_size]
        hidden, _ = model.encode_ids_batch([items[i]["ids"] for i in idx])
        for row, i in enumerate(idx):
            h = hidden[row, : len(items[i]["ids"])]
            p = nb.relation_parts(h, items[i])
            parts[i] = np.stack([p[k] for k in nb.PART_NAMES]).astype(np.float32)
        if (b + 1) % 20 == 0 or b + 1 == n_batches:
            el = time.time() - t0
            log(f"  encoded batch {b + 1}/{n_batches} (len {lengths[idx].max()}) "
                f"{el:.0f}s elapsed, ETA {el / (b + 1) * (n_batches - b - 1):.0f}s")
    enc_time = time.time() - t0
    return dict(parts=parts, labels=np.array(labels), inst_index=np.array(inst_index),
                relations=np.array(relations), lengths=lengths,
                skipped=np.array([skipped[k] for k in ("overlap", "too_long", "empty_span")]),
                encode_seconds=np.array(enc_time))


def load_or_encode(data_path, model_dir, cache_dir):
    key = hashlib.sha256(
        "|".join([CACHE_VERSION, _sha256(data_path),
                  _sha256(os.path.join(model_dir, "model.safetensors")),
                  _sha256(os.path.join(model_dir, "vocab.txt"))]).encode()
    ).hexdigest()[:16]
    cache = os.path.join(cache_dir, f"fewrel-parts-{key}.npz")
    if os.path.exists(cache):
        log(f"using cached parts {cache}")
        z = np.load(cache)
        return {k: z[k] for k in z.files}, cache, True
    with open(data_path, encoding="utf-8") as f:
        data = json.load(f)
    log(f"encoding {data_path} with float64 numpy BERT ...")
    model = nb.Bert(model_dir, np.float64)
    enc = encode_dataset(model, data)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = cache + ".tmp.npz"
    np.savez(tmp, **enc)
    os.replace(tmp, cache)
    log(f"cached to {cache}")
    return enc, cache, False


def make_episodes(by_rel, n_way, k_shot, episodes, seed):
    """Returns support [E, N, K] and query [E, N] global instance indexes."""
    rng = np.random.default_rng(seed=seed)
    R = len(by_rel)
    support = np.empty((episodes, n_way, k_shot), dtype=np.int64)
    query = np.empty((episodes, n_way), dtype=np.int64)
    for e in range(episodes):
        rels = rng.choice(R, n_way, replace=False)
        for c, r in enumerate(rels):
            pick = rng.choice(len(by_rel[r]), k_shot + 1, replace=False)
            support[e, c] = by_rel[r][pick[:k_shot]]
            query[e, c] = by_rel[r][pick[k_shot]]
    return support, query


def evaluate(X, support, query, chunk=100):
    """Per-episode accuracy of nearest-prototype classification."""
    E, N, _ = support.shape
    acc = np.empty(E)
    target = np.arange(N)
    for s in range(0, E, chunk):
        sup = X[support[s:s + chunk]]            # [e, N, K, D]
        proto = sup.mean(axis=2)                 # [e, N, D]
        q = X[query[s:s + chunk]]                # [e, N, D]
        d = ((q[:, :, None, :] - proto[:, None, :, :]) ** 2).sum(-1)  # [e, Nq, Np]
        pred = d.argmin(-1)
        acc[s:s + chunk] = (pred == target).mean(-1)
    return acc


def text_embeddings(model_dir, relations, path):
    """Unit sentence embeddings of each relation's "name: description" (float64 numpy BERT)."""
    with open(path, encoding="utf-8") as f:
        texts = json.load(f)
    sentences = []
    for r in relations:
        entry = texts[str(r)]
        entry = [entry] if isinstance(entry, str) else entry
        sentences.append(": ".join(t.strip() for t in entry if t.strip()))
    model = nb.Bert(model_dir, np.float64)
    return np.stack([model.embed([s])[0] for s in sentences])


def evaluate_with_text(X, labels, text, parts, support, query):
    """Per-episode accuracy with the relation text as w more examples of each prototype,
    w = clip(2 a, 0, 1), a = chance-corrected share of support examples whose nearest text
    (squared distance) is their own relation's."""
    E, N, K = support.shape
    acc = np.empty(E)
    tiled = np.tile(text, (1, parts))                      # [R, D]
    for e in range(E):
        rels = labels[query[e]]
        w = 1.0
        if K:
            sup = X[support[e]].reshape(N * K, -1)
            d = ((sup[:, None, :] - tiled[rels][None, :, :]) ** 2).sum(-1)
            agreement = ((d.argmin(-1) == np.repeat(np.arange(N), K)).mean() - 1 / N) / (1 - 1 / N)
            w = float(np.clip(2 * agreement, 0, 1))
        sums = X[support[e]].sum(axis=1) if K else np.zeros((N, X.shape[1]))
        proto = (sums + w * tiled[rels]) / (K + w)
        d = ((X[query[e]][:, None, :] - proto[None, :, :]) ** 2).sum(-1)
        acc[e] = (d.argmin(-1) == np.arange(N)).mean()
    return acc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--model-dir", default=nb.DEFAULT_MODEL_DIR)
    ap.add_argument("--cache-dir", default=DEFAULT_CACHE)
    ap.add_argument("--report", default=DEFAULT_REPORT)
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--relation-text", help="pid2name.json-shaped relation text")
    ap.add_argument("--text-report", default=os.path.join(REPO, "reports", "reference-fewrel-text.json"))
    args = ap.parse_args(argv)

    t_start = time.time()
    enc, cache, cached = load_or_encode(args.data, args.model_dir, args.cache_dir)
    parts = enc["parts"].astype(np.float64)
    labels = enc["labels"]
    R = len(enc["relations"])
    by_rel = [np.flatnonzero(labels == r) for r in range(R)]
    log(f"{len(labels)} instances, {R} relations, per relation "
        f"{min(map(len, by_rel))}..{max(map(len, by_rel))}; encoding took "
        f"{float(enc['encode_seconds']):.0f}s{' (when cached)' if cached else ''}")

    reps = {}
    for name in REP_ORDER:
        cols = [nb.PART_NAMES.index(p) for p in nb.REPRESENTATIONS[name]]
        reps[name] = parts[:, cols, :].reshape(len(labels), -1)

    results = {name: {} for name in REP_ORDER}
    for n_way, k_shot in SETTINGS:
        t0 = time.time()
        support, query = make_episodes(by_rel, n_way, k_shot, args.episodes, args.seed)
        for name in REP_ORDER:
            acc = evaluate(reps[name], support, query)
            results[name][f"{n_way}-{k_shot}"] = {
                "accuracy": float(acc.mean()),
                "ci95": float(1.96 * acc.std() / np.sqrt(len(acc))),
            }
        log(f"  {n_way}-way {k_shot}-shot done in {time.time() - t0:.1f}s")

    if args.relation_text:
        name = "entity_mean_sentence"
        cols = [nb.PART_NAMES.index(p) for p in nb.REPRESENTATIONS[name]]
        text = text_embeddings(args.model_dir, enc["relations"], args.relation_text)
        text_results = {}
        for n_way, k_shot in SETTINGS + [(5, 0), (10, 0)]:
            support, query = make_episodes(by_rel, n_way, k_shot, args.episodes, args.seed)
            acc = evaluate_with_text(reps[name], labels, text, len(cols), support, query)
            text_results[f"{n_way}-{k_shot}"] = {
                "accuracy": float(acc.mean()),
                "ci95": float(1.96 * acc.std() / np.sqrt(len(acc))),
            }
        with open(args.text_report, "w") as f:
            json.dump({"representation": name, "relation_text": os.path.basename(args.relation_text),
                       "results": text_results}, f, indent=2)
            f.write("\n")
        print("| entity_mean_sentence + relation text | " + " | ".join(
            f"{k}: {100 * v['accuracy']:.2f} ± {100 * v['ci95']:.2f}" for k, v in text_results.items()) + " |")
        return 0

    os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
    with open(args.report, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    log(f"wrote {args.report} ({time.time() - t_start:.0f}s total)")

    keys = [f"{n}-{k}" for n, k in SETTINGS]
    print(f"FewRel val_wiki, {args.episodes} episodes, seed {args.seed}, accuracy % (+/- 95% CI)\n")
    print("| representation | " + " | ".join(f"{k.replace('-', '-way ')}-shot" for k in keys) + " |")
    print("|---|" + "---|" * len(keys))
    for name in REP_ORDER:
        cells = [f"{100 * results[name][k]['accuracy']:.2f} ± {100 * results[name][k]['ci95']:.2f}"
                 for k in keys]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
