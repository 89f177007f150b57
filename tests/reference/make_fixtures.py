#!/usr/bin/env python3
"""Write the numpy-reference fixtures for the all-MiniLM-L6-v2 encoder.

Outputs (in tests/reference/fixtures/):
  sentences.json               the list of sentences, in order
  minilm_reference.safetensors for sentence i:
      ids.{i}        int64   [len]       token ids incl. [CLS] / [SEP]
      hidden.{i}     float32 [len, 384]  last hidden state, sentence run alone
      embedding.{i}  float32 [384]       mean-pooled, L2-normalised
  relation_reference.json      a JSON array: relation representations for
                               12 FewRel val_wiki records (see README.md)

All model arithmetic is float64 (numpy_bert.Bert default); values are
stored rounded to float32 (safetensors) or 9 significant digits (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see numpy_bert.py

import numpy as np  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy_bert as nb  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
FEWREL_VAL = os.environ.get("TKRE_FEWREL_VAL", "/work/shared/data/fewrel/val_wiki.json")

SENTENCES = [
    "Hello world.",
    "Go away now!",
    "The cat sat on the mat.",
    "Marie Curie was born in Warsaw in 1867.",
    "Zürich is the largest city in Switzerland, and its café culture is famous.",
    "The well-known physicist received two Nobel Prizes: one in 1903 and another in 1911.",
    "Antidisestablishmentarianism and pneumonoultramicroscopicsilicovolcanoconiosis are unusually long words.",
    "Unbelievably, the transcontinental railroad's electrification was uncharacteristically straightforward.",
    "Is this the real life? Is this just fantasy?",
    "He paid $3.50 for 2 coffees at 7:45 a.m. on 12/03/2021.",
    "Ångström, Brontë, Dvořák, Gödel and Erdős are names with diacritics.",
    "Naïve résumé writers often misspell façade and jalapeño.",
    "She said: \"Don't stop (please)!\" -- and then left; nobody knew why...",
    "The quick brown fox jumps over the lazy dog.",
    "Photosynthesis converts light energy into chemical energy stored in glucose molecules.",
    "Tokyo (東京) is the capital of Japan.",
    "E-mail addresses like someone@example.com and hashtags like #rust are split on punctuation.",
    "COVID-19 vaccines were developed in under 12 months.",
    "Line one\nline two\twith a tab.",
    "The Treaty of Westphalia (1648) ended the Thirty Years' War in the Holy Roman Empire.",
    "Mount Everest is 8,848.86 metres tall according to the 2020 survey.",
    "Rust's ownership model prevents data races at compile time, without a garbage collector.",
    "Although the committee had already reviewed dozens of proposals, it decided to postpone "
    "the final vote until the independent auditors could verify the budget figures.",
    "In the early twentieth century, a small group of physicists working in Copenhagen, "
    "Göttingen and Cambridge developed quantum mechanics, a theory that explained atomic "
    "spectra, chemical bonding and the stability of matter, and which later made possible "
    "transistors, lasers and magnetic resonance imaging, technologies that transformed "
    "medicine, communication and everyday life for billions of people around the world.",
    "@ Marie Curie @ was born in # Warsaw # .",
    "# Paris # is the capital of @ France @ .",
    "The album @ Thriller @ was released by # Epic Records # in 1982 .",
    "@ Albert Einstein @ developed the theory of # general relativity # while working in Berlin .",
]

REL_REPRESENTATIONS = ["markers", "entity_mean", "entity_mean_sentence", "markers_sentence", "sentence"]


def _round_list(v):
    return [float(f"{x:.9g}") for x in np.asarray(v, dtype=np.float64)]


def make_sentence_fixtures(model):
    tok = model.tokenizer
    id_lists = [tok.encode(s) for s in SENTENCES]
    tensors = {}
    single_hidden, single_emb = [], []
    t0 = time.time()
    for i, ids in enumerate(id_lists):
        h = model.forward(np.array([ids]))[0]
        e = nb.mean_pool(h[None], np.ones((1, len(ids))))[0]
        single_hidden.append(h)
        single_emb.append(e)
        tensors[f"ids.{i}"] = np.array(ids, dtype=np.int64)
        tensors[f"hidden.{i}"] = h.astype(np.float32)
        tensors[f"embedding.{i}"] = e.astype(np.float32)
    t_single = time.time() - t0

    # One padded batch: must agree with the one-by-one runs.
    t0 = time.time()
    hb, mask = model.encode_ids_batch(id_lists)
    eb = nb.mean_pool(hb, mask)
    t_batch = time.time() - t0
    dh = max(np.abs(hb[i, : len(ids)] - single_hidden[i]).max() for i, ids in enumerate(id_lists))
    de = max(np.abs(eb[i] - single_emb[i]).max() for i in range(len(id_lists)))
    print(f"batched-vs-single max |diff| ({model.dtype.name} compute): "
          f"hidden {dh:.3e}, embedding {de:.3e}")
    assert dh < 1e-5 and de < 1e-5, "batched and single runs disagree"

    n_tok = sum(len(x) for x in id_lists)
    print(f"{len(SENTENCES)} sentences, {n_tok} tokens, lengths "
          f"{min(map(len, id_lists))}..{max(map(len, id_lists))}; "
          f"single {t_single:.2f}s, batch {t_batch:.2f}s")
    return tensors, id_lists, single_hidden, single_emb


def float32_compute_check(model_dir, id_lists, single_hidden, single_emb):
    """Informational: how far a float32 computation lands from the float64
    reference (a guide for the tolerance of float32 implementations)."""
    m32 = nb.Bert(model_dir, np.float32)
    dh = de = 0.0
    for ids, h64, e64 in zip(id_lists, single_hidden, single_emb):
        h = m32.forward(np.array([ids]))[0].astype(np.float64)
        e = nb.mean_pool(h[None], np.ones((1, len(ids))))[0]
        dh = max(dh, np.abs(h - h64).max())
        de = max(de, np.abs(e - e64).max())
    hb, mask = m32.encode_ids_batch(id_lists)
    db = max(np.abs(hb[i, : len(ids)].astype(np.float64) - single_hidden[i]).max()
             for i, ids in enumerate(id_lists))
    print(f"float32-compute vs float64 reference max |diff|: hidden {dh:.3e}, "
          f"embedding {de:.3e}; float32 padded batch vs float64 single: hidden {db:.3e}")


def make_relation_fixtures(model, path=FEWREL_VAL, n_rel=4, n_per_rel=3):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    relations = sorted(data)[:n_rel]
    records, skipped = [], {"overlap": 0, "too_long": 0, "empty_span": 0}
    for rel in relations:
        for inst_idx, rec in enumerate(data[rel][:n_per_rel]):
            try:
                info = nb.tokenize_marked(model.tokenizer, rec)
            except nb.SkipRecord as e:
                skipped[str(e)] += 1
                continue
            h = model.forward(np.array([info["ids"]]))[0]
            parts = nb.relation_parts(h, info)
            out = {
                "relation": rel,
                "instance_index": inst_idx,
                "tokens": rec["tokens"],
                "h": rec["h"],
                "t": rec["t"],
                "text": info["text"],
                "ids": info["ids"],
                "head_marker": info["head_marker"],
                "tail_marker": info["tail_marker"],
                "head_span": list(info["head_span"]),
                "tail_span": list(info["tail_span"]),
            }
            for name in REL_REPRESENTATIONS:
                out[name] = _round_list(nb.compose_representation(parts, name))
            records.append(out)
    print(f"relation records: {len(records)} written, skipped {skipped}")
    # A top-level JSON array of records (what tests/reference_parity.rs reads);
    # provenance and the definition are documented in README.md.
    return records


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default=nb.DEFAULT_MODEL_DIR)
    ap.add_argument("--out-dir", default=FIXTURES)
    ap.add_argument("--skip-float32-check", action="store_true")
    args = ap.parse_args(argv)

    os.makedirs(args.out_dir, exist_ok=True)
    model = nb.Bert(args.model_dir, np.float64)
    tensors, id_lists, single_hidden, single_emb = make_sentence_fixtures(model)
    st_path = os.path.join(args.out_dir, "minilm_reference.safetensors")
    # A single metadata key keeps the file byte-for-byte reproducible (the
    # safetensors writer does not preserve the order of several keys).
    save_file(tensors, st_path, metadata={
        "info": "sentence-transformers/all-MiniLM-L6-v2; tests/reference/make_fixtures.py "
                f"(numpy, float64 compute); {len(SENTENCES)} sentences",
    })
    os.chmod(st_path, 0o644)  # the writer creates it 0600
    with open(os.path.join(args.out_dir, "sentences.json"), "w", encoding="utf-8") as f:
        json.dump(SENTENCES, f, ensure_ascii=False, indent=1)
        f.write("\n")
    if not args.skip_float32_check:
        float32_compute_check(args.model_dir, id_lists, single_hidden, single_emb)

    records = make_relation_fixtures(model)
    with open(os.path.join(args.out_dir, "relation_reference.json"), "w", encoding="utf-8") as f:
        json.dump(records, f, ensure_ascii=False)
        f.write("\n")

    for name in sorted(os.listdir(args.out_dir)):
        p = os.path.join(args.out_dir, name)
        print(f"{p}: {os.path.getsize(p)} bytes")
    assert os.path.getsize(st_path) < 2 * 1024 * 1024, "fixture over 2 MB"
    return 0


if __name__ == "__main__":
    sys.exit(main())
