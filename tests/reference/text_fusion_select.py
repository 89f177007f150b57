#!/usr/bin/env python3
"""Chooses how a relation's text (name, description) is fused with its examples, on
relations that are NOT FewRel 1.0 val's: the TACRED-schema samples released with the TKRE
paper (tkre-synthetic/llm_da_8.jsonl), whose relations have terse names only
("per:city_of_birth" -> "city of birth"). numpy only (numpy_bert.py), independent of the
Rust crate.

Every sample is encoded once (entity means + sentence mean, as the Rust default
representation); every relation name once (sentence embedding: mean of all tokens,
L2-normalised). Then N-way K-shot episodes (numpy default_rng(seed)) score queries under
each candidate rule:

  none            similarity to the example prototype, s_ex = 1 - |q - p|^2 / (2P)
  extra-example   the text as w extra examples, every part = the text embedding t
  sentence-part   s = (K s_ex + w cos(q_sentence, t)) / (K + w)
  template        the text as w extra examples, encoded as "@ X @ <name> # Y #"

Zero-shot (K = 0) uses the text alone. Then mixed sets: N-way episodes where Z relations
have text only and the others one example + text (extra-example, w = 1), scoring each text-only
relation by its text similarity as is, or shifted by the query's mean gap between fused and
text-alone similarity over the relations that have both ("offset"), or mapped by a per-query
least-squares line over them ("affine"). Last, robustness: the same episodes with the right
names, the names shuffled between relations, and no information ("relation 7"), under a
fixed weight w = 1 and under w = clamp(2 * agreement, 0, 1), where agreement is how well the
texts alone classify the episode's own support examples (0 at chance, 1 all right). Writes
reports/text-fusion-selection.json and prints tables (accuracy %, 95% interval).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy_bert as nb  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_DATA = "/work/shared/data/tkre-synthetic/llm_da_8.jsonl"
PARTS = ["head_mean", "tail_mean", "sentence_mean"]


def relation_name(label: str) -> str:
    """TACRED label -> the terse words a user would type: "per:city_of_birth" -> "city of birth"."""
    name = label.split(":", 1)[-1]
    name = name.replace("stateorprovince", "state or province")
    return re.sub(r"[_/]+", " ", name).strip()


def to_record(sample):
    """A character-offset sample -> a FewRel-style record (whitespace tokens)."""
    text = sample["text"]
    tokens, starts = [], []
    for m in re.finditer(r"\S+", text):
        tokens.append(m.group())
        starts.append((m.start(), m.end()))

    def span(start, end):
        idx = [i for i, (s, e) in enumerate(starts) if s < end and e > start]
        if not idx:
            raise nb.SkipRecord("empty_span")
        return [idx]

    return {
        "tokens": tokens,
        "h": [sample["subj"], "", span(sample["subj_start"], sample["subj_end"])],
        "t": [sample["obj"], "", span(sample["obj_start"], sample["obj_end"])],
    }


def encode_records(model, records):
    out = []
    for rec in records:
        info = nb.tokenize_marked(model.tokenizer, rec)
        hidden = model.forward(np.array([info["ids"]]))[0]
        parts = nb.relation_parts(hidden, info)
        out.append(np.concatenate([parts[p] for p in PARTS]))
    return np.array(out, dtype=np.float64)


def template_vectors(model, names):
    records = []
    for name in names:
        words = name.split()
        records.append({"tokens": ["X"] + words + ["Y"], "h": ["X", "", [[0]]],
                        "t": ["Y", "", [[len(words) + 1]]]})
    return encode_records(model, records)


def similarity(q, p, parts):
    return 1.0 - ((q[None, :] - p) ** 2).sum(axis=1) / (2 * parts)


def run_episodes(vecs, labels, text, tmpl, n, k, episodes, seed, rules):
    """Accuracy per rule over `episodes` N-way K-shot episodes (one query per relation)."""
    rng = np.random.default_rng(seed)
    rels = sorted({r for r in labels if (np.array(labels) == r).sum() >= k + 1})
    by_rel = {r: np.flatnonzero(np.array(labels) == r) for r in rels}
    h = vecs.shape[1] // 3
    correct = {name: [] for name in rules}
    for _ in range(episodes):
        chosen = rng.choice(len(rels), n, replace=False)
        support, queries = [], []
        for c in chosen:
            idx = rng.choice(by_rel[rels[c]], k + 1, replace=False)
            support.append(idx[:k])
            queries.append(idx[k])
        t = np.array([text[rels[c]] for c in chosen])
        tv = np.array([tmpl[rels[c]] for c in chosen])
        t3 = np.concatenate([t, t, t], axis=1)
        for name, (rule, w) in rules.items():
            hits = 0
            for truth, qi in enumerate(queries):
                q = vecs[qi]
                if rule == "none":
                    if k == 0:
                        continue
                    p = np.array([vecs[s].mean(axis=0) for s in support])
                    s = similarity(q, p, 3)
                elif rule in ("extra-example", "template"):
                    extra = t3 if rule == "extra-example" else tv
                    sums = np.array([vecs[s].sum(axis=0) if k else np.zeros(vecs.shape[1])
                                     for s in support])
                    p = (sums + w * extra) / (k + w)
                    s = similarity(q, p, 3)
                elif rule == "sentence-part":
                    st = t @ q[2 * h:]
                    if k == 0:
                        s = st
                    else:
                        p = np.array([vecs[s_].mean(axis=0) for s_ in support])
                        s = (k * similarity(q, p, 3) + w * st) / (k + w)
                hits += int(np.argmax(s) == truth)
            correct[name].append(hits / n)
    return {name: (float(np.mean(v)), float(1.96 * np.std(v) / np.sqrt(len(v))))
            for name, v in correct.items() if v}


def run_mixed(vecs, labels, text, n, zero_shot, episodes, seed, variants):
    """Accuracy on the text-only relations' queries and on the others', per variant."""
    labels = np.array(labels)
    rels = sorted({r for r in labels if (labels == r).sum() >= 2})
    out = {}
    for variant in variants:
        hits = {"text-only": [], "with examples": []}
        rng = np.random.default_rng(seed)
        for _ in range(episodes):
            chosen = rng.choice(len(rels), n, replace=False)
            support, queries = [], []
            for j, c in enumerate(chosen):
                idx = rng.choice(np.flatnonzero(labels == rels[c]), 2, replace=False)
                support.append(None if j < zero_shot else idx[0])
                queries.append(idx[1])
            t3 = [np.concatenate([text[rels[c]]] * 3) for c in chosen]
            both = [k for k in range(n) if support[k] is not None]
            for j, qi in enumerate(queries):
                q = vecs[qi]
                st = np.array([similarity(q, t[None], 3)[0] for t in t3])
                s = np.array([similarity(q, ((vecs[support[k]] + t3[k]) / 2)[None], 3)[0]
                              if support[k] is not None else st[k] for k in range(n)])
                zs = [k for k in range(n) if support[k] is None]
                if variant == "offset":
                    s[zs] = st[zs] + np.mean(s[both] - st[both])
                elif variant == "affine":
                    b, a = np.polyfit(st[both], s[both], 1)
                    s[zs] = a + b * st[zs]
                hits["text-only" if j < zero_shot else "with examples"].append(int(np.argmax(s) == j))
        out[variant] = {k: (float(np.mean(v)), float(1.96 * np.std(v) / np.sqrt(len(v))))
                        for k, v in hits.items()}
    return out


def agreement_weight(vecs, support, t3):
    """clamp(2 * agreement, 0, 1): agreement = chance-corrected share of support examples
    whose nearest text (of the episode's relations) is their own relation's."""
    n = len(support)
    hits = [int(np.argmax(similarity(vecs[s], t3, 3)) == j) for j, ss in enumerate(support) for s in ss]
    agreement = (np.mean(hits) - 1 / n) / (1 - 1 / n)
    return float(np.clip(2 * agreement, 0, 1))


def run_robustness(vecs, labels, texts, n, k, episodes, seed):
    """Accuracy with no text, a fixed weight 1 and the agreement weight, for one text variant."""
    labels = np.array(labels)
    rels = sorted({r for r in labels if (labels == r).sum() >= k + 1})
    rng = np.random.default_rng(seed)
    acc = {"none": [], "w = 1": [], "agreement": []}
    for _ in range(episodes):
        chosen = rng.choice(len(rels), n, replace=False)
        support, queries = [], []
        for c in chosen:
            idx = rng.choice(np.flatnonzero(labels == rels[c]), k + 1, replace=False)
            support.append(idx[:k])
            queries.append(idx[k])
        t3 = np.array([np.concatenate([texts[rels[c]]] * 3) for c in chosen])
        sums = np.array([vecs[ss].sum(axis=0) for ss in support])
        for name, w in (("none", 0.0), ("w = 1", 1.0), ("agreement", agreement_weight(vecs, support, t3))):
            protos = (sums + w * t3) / (k + w)
            acc[name].append(np.mean([int(np.argmax(similarity(vecs[q], protos, 3)) == j)
                                      for j, q in enumerate(queries)]))
    return {name: (float(np.mean(v)), float(1.96 * np.std(v) / np.sqrt(len(v)))) for name, v in acc.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--model", default=nb.DEFAULT_MODEL_DIR)
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(REPO, "reports", "text-fusion-selection.json"))
    args = ap.parse_args(argv)

    model = nb.Bert(args.model, dtype=np.float32)
    samples = [json.loads(line) for line in open(args.data) if line.strip()]
    records, labels = [], []
    for s in samples:
        try:
            record = to_record(s)
            nb.tokenize_marked(model.tokenizer, record)  # skips overlapping entities
            records.append(record)
            labels.append(s["relation"])
        except nb.SkipRecord:
            pass
    vecs = encode_records(model, records)
    rels = sorted(set(labels))
    names = {r: relation_name(r) for r in rels}
    text = dict(zip(rels, nb.l2_normalize(model.embed([names[r] for r in rels]))))
    tmpl = dict(zip(rels, template_vectors(model, [names[r] for r in rels])))

    rules = {"none": ("none", 0)}
    for w in (0.25, 0.5, 1.0, 2.0):
        rules[f"extra-example w={w}"] = ("extra-example", w)
        rules[f"sentence-part w={w}"] = ("sentence-part", w)
        rules[f"template w={w}"] = ("template", w)
    settings = [(5, 0), (10, 0), (5, 1), (10, 1), (5, 5), (10, 5)]
    report = {"data": os.path.basename(args.data), "samples": len(records),
              "relations": len(rels), "episodes": args.episodes, "seed": args.seed,
              "names": names, "results": {}}
    for n, k in settings:
        res = run_episodes(vecs, labels, text, tmpl, n, k, args.episodes, args.seed, rules)
        report["results"][f"{n}-{k}"] = res
    header = "| rule | " + " | ".join(f"{n}-way {k}-shot" for n, k in settings) + " |"
    print(header)
    print("|" + "---|" * (len(settings) + 1))
    for name in rules:
        cells = []
        for n, k in settings:
            r = report["results"][f"{n}-{k}"].get(name)
            cells.append(f"{100 * r[0]:.1f} ± {100 * r[1]:.1f}" if r else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    print("| mixed set | rule | text-only relations' queries | other queries |")
    print("|---|---|---|---|")
    report["mixed"] = {}
    for n, zero_shot in [(5, 1), (6, 3), (10, 2), (10, 5)]:
        res = run_mixed(vecs, labels, text, n, zero_shot, args.episodes, args.seed,
                        ["as is", "offset", "affine"])
        report["mixed"][f"{n}-way, {zero_shot} text-only"] = res
        for variant, r in res.items():
            cells = [f"{100 * r[k][0]:.1f} ± {100 * r[k][1]:.1f}" for k in ("text-only", "with examples")]
            print(f"| {n}-way, {zero_shot} text-only | {variant} | " + " | ".join(cells) + " |")
    print()
    print("| names | rule | " + " | ".join(f"{n}-way {k}-shot" for n, k in settings if k) + " |")
    print("|---|---|" + "---|" * len([1 for _, k in settings if k]))
    shuffled = np.random.default_rng(7).permutation(len(rels))
    variants = {
        "right": [names[r] for r in rels],
        "shuffled between relations": [names[rels[i]] for i in shuffled],
        "no information": [f"relation {i}" for i in range(len(rels))],
    }
    report["robustness"] = {}
    for variant, words in variants.items():
        embedded = dict(zip(rels, nb.l2_normalize(model.embed(words))))
        rows = {}
        for n, k in settings:
            if k:
                rows[f"{n}-{k}"] = run_robustness(vecs, labels, embedded, n, k, args.episodes, args.seed)
        report["robustness"][variant] = rows
        for rule in ("none", "w = 1", "agreement"):
            cells = [f"{100 * rows[key][rule][0]:.1f} ± {100 * rows[key][rule][1]:.1f}" for key in rows]
            print(f"| {variant} | {rule} | " + " | ".join(cells) + " |")
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
