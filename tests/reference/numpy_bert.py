#!/usr/bin/env python3
"""Independent numpy reference for the all-MiniLM-L6-v2 BERT encoder.

This file shares no code with the Rust project.  It depends only on the
Python standard library, numpy and ``safetensors.numpy`` (to read the
checkpoint).  It contains:

* ``WordPieceTokenizer`` -- a from-scratch BERT *uncased* tokenizer
  (BertNormalizer + BertPreTokenizer + greedy WordPiece + [CLS]/[SEP]),
  reading ``vocab.txt``.
* ``Bert`` -- the BERT encoder forward pass.  All arithmetic is done in
  **float64** by default (weights are read as float32 and widened once);
  ``dtype=np.float32`` is accepted for a float32 run.  GELU uses the exact
  erf form with an erf implementation accurate to ~1e-16 (see ``erf``).
* ``mean_pool`` -- sentence-transformers mean pooling + L2 normalisation.
* The relation-representation helpers used by ``make_fixtures.py`` and
  ``fewrel_eval.py`` (``mark_record``, ``relation_parts``,
  ``compose_representation``).

CLI::

    python3 tests/reference/numpy_bert.py "A sentence." "Another one."
    python3 tests/reference/numpy_bert.py --self-test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import unicodedata

# One BLAS thread by default: on the 2-core dev box threaded OpenBLAS was
# slower (contention) for both small and batched inputs.  Override by setting
# OPENBLAS_NUM_THREADS before running.  (Only effective if numpy has not been
# imported yet.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

DEFAULT_MODEL_DIR = os.environ.get(
    "TKRE_MODEL_DIR", "/root/.cache/tkre/models/all-MiniLM-L6-v2"
)

# --------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------


def _is_control(ch: str) -> bool:
    """BertNormalizer control test: any 'C*' category except \\t \\n \\r."""
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def _is_whitespace(ch: str) -> bool:
    """BertNormalizer / BertPreTokenizer whitespace test.

    \\t \\n \\r and space, plus any other Unicode White_Space character.
    (Control characters have already been removed when this is used during
    cleaning, so Python's ``isspace`` matches Unicode White_Space here.)
    """
    if ch in " \t\n\r":
        return True
    return ch.isspace()


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B920 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def normalize(text: str) -> str:
    """BertNormalizer(clean_text, handle_chinese_chars, strip_accents, lowercase).

    Order (as in the reference implementation): clean text, pad CJK chars,
    strip accents (NFD then drop category Mn), lowercase (per character, so
    no context-dependent final-sigma rule).
    """
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        out.append(" " if _is_whitespace(ch) else ch)
    text = "".join(out)
    out = []
    for ch in text:
        if _is_cjk(ord(ch)):
            out.append(" ")
            out.append(ch)
            out.append(" ")
        else:
            out.append(ch)
    text = "".join(out)
    text = "".join(
        ch for ch in unicodedata.normalize("NFD", text)
        if unicodedata.category(ch) != "Mn"
    )
    return "".join(ch.lower() for ch in text)


def pre_tokenize(text: str) -> list[str]:
    """BertPreTokenizer: split on whitespace, isolate every punctuation char."""
    words: list[str] = []
    cur: list[str] = []
    for ch in text:
        if _is_whitespace(ch):
            if cur:
                words.append("".join(cur))
                cur = []
        elif _is_punctuation(ch):
            if cur:
                words.append("".join(cur))
                cur = []
            words.append(ch)
        else:
            cur.append(ch)
    if cur:
        words.append("".join(cur))
    return words


class WordPieceTokenizer:
    def __init__(self, vocab_path: str, max_input_chars_per_word: int = 100):
        with open(vocab_path, encoding="utf-8") as f:
            tokens = [line.rstrip("\n") for line in f]
        self.id_to_token = tokens
        self.vocab = {}
        for i, t in enumerate(tokens):
            self.vocab.setdefault(t, i)
        self.max_chars = max_input_chars_per_word
        self.unk = "[UNK]"
        self.cls_id = self.vocab["[CLS]"]
        self.sep_id = self.vocab["[SEP]"]
        self.pad_id = self.vocab["[PAD]"]
        self.unk_id = self.vocab["[UNK]"]

    def wordpiece(self, word: str) -> list[str]:
        if len(word) > self.max_chars:
            return [self.unk]
        pieces = []
        start = 0
        n = len(word)
        while start < n:
            end = n
            found = None
            while start < end:
                sub = word[start:end]
                if start > 0:
                    sub = "##" + sub
                if sub in self.vocab:
                    found = sub
                    break
                end -= 1
            if found is None:
                return [self.unk]
            pieces.append(found)
            start = end
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """Word pieces without [CLS]/[SEP]."""
        pieces = []
        for w in pre_tokenize(normalize(text)):
            pieces.extend(self.wordpiece(w))
        return pieces

    def encode(self, text: str) -> list[int]:
        """Token ids with [CLS] ... [SEP]."""
        return (
            [self.cls_id]
            + [self.vocab[p] for p in self.tokenize(text)]
            + [self.sep_id]
        )

    def convert_ids(self, ids) -> list[str]:
        return [self.id_to_token[int(i)] for i in ids]


# --------------------------------------------------------------------------
# erf / GELU
# --------------------------------------------------------------------------
#
# erf is evaluated with a piecewise Taylor expansion built at import time
# from first principles: on [0, 6) split into intervals of width 1/32, around
# each centre c
#     erf(c + t) = sum_n a_n t^n,  a_0 = erf(c) (math.erf),
#     a_n = (2/sqrt(pi)) (-1)^(n-1) H_{n-1}(c) exp(-c^2) / n!   (n >= 1)
# with physicists' Hermite polynomials H.  |t| <= 1/64 and degree 9 give a
# truncation error far below double rounding; measured max |error| against
# math.erf is ~2e-16 (see --self-test).  For |x| >= 6, erf(x) = sign(x) in
# double precision (erfc(6) ~ 2e-17).

_ERF_H = 1.0 / 32.0
_ERF_XMAX = 6.0
_ERF_DEG = 9


def _build_erf_table():
    n_int = int(round(_ERF_XMAX / _ERF_H))
    centres = (np.arange(n_int) + 0.5) * _ERF_H
    coef = np.zeros((_ERF_DEG + 1, n_int))
    two_over_sqrtpi = 2.0 / math.sqrt(math.pi)
    for k, c in enumerate(centres):
        c = float(c)
        coef[0, k] = math.erf(c)
        # H_0, H_1, ...
        h_prev, h_cur = 1.0, 2.0 * c  # H_0, H_1
        herm = [1.0, 2.0 * c]
        for m in range(1, _ERF_DEG):
            h_next = 2.0 * c * h_cur - 2.0 * m * h_prev
            herm.append(h_next)
            h_prev, h_cur = h_cur, h_next
        g = two_over_sqrtpi * math.exp(-c * c)
        for n in range(1, _ERF_DEG + 1):
            coef[n, k] = g * ((-1.0) ** (n - 1)) * herm[n - 1] / math.factorial(n)
    return centres, coef


_ERF_CENTRES, _ERF_COEF = _build_erf_table()


def erf(x: np.ndarray) -> np.ndarray:
    """Vectorised erf, float64 internally, |error| ~ 1e-16."""
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x)
    k = np.minimum((ax * (1.0 / _ERF_H)).astype(np.intp), len(_ERF_CENTRES) - 1)
    t = ax - _ERF_CENTRES[k]
    acc = _ERF_COEF[_ERF_DEG][k]
    for n in range(_ERF_DEG - 1, -1, -1):
        acc = acc * t + _ERF_COEF[n][k]
    acc = np.where(ax >= _ERF_XMAX, 1.0, acc)
    return np.copysign(acc, x)


_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def gelu(x: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Exact GELU: 0.5 x (1 + erf(x / sqrt 2)).  Evaluated in float64 in
    cache-sized chunks; returns x's dtype."""
    flat = x.reshape(-1)
    out = np.empty_like(flat)
    for s in range(0, flat.size, chunk):
        v = flat[s:s + chunk].astype(np.float64)
        out[s:s + chunk] = 0.5 * v * (1.0 + erf(v * _INV_SQRT2))
    return out.reshape(x.shape)


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------


class Bert:
    def __init__(self, model_dir: str = DEFAULT_MODEL_DIR, dtype=np.float64):
        from safetensors.numpy import load_file

        with open(os.path.join(model_dir, "config.json")) as f:
            self.config = json.load(f)
        c = self.config
        self.hidden = c["hidden_size"]
        self.n_heads = c["num_attention_heads"]
        self.d_head = self.hidden // self.n_heads
        self.n_layers = c["num_hidden_layers"]
        self.eps = float(c["layer_norm_eps"])
        self.max_pos = c["max_position_embeddings"]
        self.dtype = np.dtype(dtype)
        w = load_file(os.path.join(model_dir, "model.safetensors"))

        def get(name):
            return np.ascontiguousarray(w[name].astype(self.dtype))

        def lin(prefix):  # PyTorch [out, in] -> [in, out] for x @ W
            return (np.ascontiguousarray(get(prefix + ".weight").T), get(prefix + ".bias"))

        self.word = get("embeddings.word_embeddings.weight")
        self.pos = get("embeddings.position_embeddings.weight")
        self.tok_type = get("embeddings.token_type_embeddings.weight")
        self.emb_ln = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
        self.layers = []
        for i in range(self.n_layers):
            p = f"encoder.layer.{i}."
            self.layers.append(
                dict(
                    q=lin(p + "attention.self.query"),
                    k=lin(p + "attention.self.key"),
                    v=lin(p + "attention.self.value"),
                    o=lin(p + "attention.output.dense"),
                    ln1=(get(p + "attention.output.LayerNorm.weight"),
                         get(p + "attention.output.LayerNorm.bias")),
                    i=lin(p + "intermediate.dense"),
                    out=lin(p + "output.dense"),
                    ln2=(get(p + "output.LayerNorm.weight"),
                         get(p + "output.LayerNorm.bias")),
                )
            )
        self.tokenizer = WordPieceTokenizer(os.path.join(model_dir, "vocab.txt"))

    def _ln(self, x, gb):
        g, b = gb
        mu = x.mean(axis=-1, keepdims=True)
        xc = x - mu
        var = (xc * xc).mean(axis=-1, keepdims=True)
        return xc / np.sqrt(var + self.eps) * g + b

    def forward(self, ids: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """ids, mask: [B, L] ints (mask 1 = real token, 0 = padding).
        Returns the last hidden state [B, L, hidden] in self.dtype.
        Padded key positions get an additive -1e9 before the softmax."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim == 1:
            ids = ids[None]
        B, L = ids.shape
        if L > self.max_pos:
            raise ValueError(f"sequence of {L} tokens > {self.max_pos}")
        if mask is None:
            mask = np.ones((B, L), dtype=np.int64)
        mask = np.asarray(mask)
        dt = self.dtype
        x = self.word[ids] + self.pos[:L][None] + self.tok_type[0][None, None]
        x = self._ln(x, self.emb_ln)
        add_mask = np.where(mask > 0, 0.0, -1e9).astype(dt)[:, None, None, :]
        H, D = self.n_heads, self.d_head
        scale = dt.type(1.0 / math.sqrt(D))
        for lay in self.layers:
            x2 = x.reshape(B * L, self.hidden)

            def proj(wb, inp=x2):
                return inp @ wb[0] + wb[1]

            q = proj(lay["q"]).reshape(B, L, H, D).transpose(0, 2, 1, 3)
            k = proj(lay["k"]).reshape(B, L, H, D).transpose(0, 2, 3, 1)
            v = proj(lay["v"]).reshape(B, L, H, D).transpose(0, 2, 1, 3)
            s = (q @ k) * scale + add_mask  # [B, H, L, L]
            s = s - s.max(axis=-1, keepdims=True)
            p = np.exp(s)
            p /= p.sum(axis=-1, keepdims=True)
            ctx = (p @ v).transpose(0, 2, 1, 3).reshape(B * L, self.hidden)
            a = ctx @ lay["o"][0] + lay["o"][1]
            x2 = self._ln(a + x2, lay["ln1"])
            inter = gelu(x2 @ lay["i"][0] + lay["i"][1])
            o = inter @ lay["out"][0] + lay["out"][1]
            x = self._ln(o + x2, lay["ln2"]).reshape(B, L, self.hidden)
        return x

    def encode_ids_batch(self, id_lists):
        """Pad a list of id lists (with [PAD]) and run one batched forward.
        Returns (hidden [B, Lmax, H], mask [B, Lmax])."""
        L = max(len(s) for s in id_lists)
        ids = np.full((len(id_lists), L), self.tokenizer.pad_id, dtype=np.int64)
        mask = np.zeros((len(id_lists), L), dtype=np.int64)
        for i, s in enumerate(id_lists):
            ids[i, : len(s)] = s
            mask[i, : len(s)] = 1
        return self.forward(ids, mask), mask

    def embed(self, sentences):
        """sentence-transformers embeddings (mean pool + L2 norm), [B, H]."""
        id_lists = [self.tokenizer.encode(s) for s in sentences]
        h, mask = self.encode_ids_batch(id_lists)
        return mean_pool(h, mask)


def l2_normalize(v: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    n = np.sqrt((v * v).sum(axis=-1, keepdims=True))
    return v / np.maximum(n, eps)


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over positions with mask 1, then L2 normalise (eps 1e-12)."""
    m = np.asarray(mask, dtype=hidden.dtype)[..., None]
    s = (hidden * m).sum(axis=-2)
    cnt = np.maximum(m.sum(axis=-2), 1e-9)
    return l2_normalize(s / cnt)


# --------------------------------------------------------------------------
# Relation representations (FewRel-style records)
# --------------------------------------------------------------------------

HEAD_MARK = "@"
TAIL_MARK = "#"
MAX_RELATION_PIECES = 256

# name -> parts, in concatenation order
REPRESENTATIONS = {
    "markers": ["head_marker", "tail_marker"],
    "entity_mean": ["head_mean", "tail_mean"],
    "entity_mean_sentence": ["head_mean", "tail_mean", "sentence_mean"],
    "markers_sentence": ["head_marker", "tail_marker", "sentence_mean"],
    "sentence": ["sentence_mean"],
}
PART_NAMES = ["head_marker", "tail_marker", "head_mean", "tail_mean", "sentence_mean"]


class SkipRecord(Exception):
    pass


def mark_record(record):
    """Return (words, head_open_word, head_close_word, tail_open_word,
    tail_close_word) for a FewRel record, or raise SkipRecord('overlap').

    "@" is inserted before the first and after the last head token, "#"
    before the first and after the last tail token; indexes come from
    record['h'][2][0] / record['t'][2][0] (first mention only; first / last
    = min / max index)."""
    tokens = record["tokens"]
    h = record["h"][2][0]
    t = record["t"][2][0]
    h0, h1 = min(h), max(h)
    t0, t1 = min(t), max(t)
    if not (h1 < t0 or t1 < h0):
        raise SkipRecord("overlap")
    before = {h0: HEAD_MARK, t0: TAIL_MARK}
    after = {h1: HEAD_MARK, t1: TAIL_MARK}
    words, pos = [], {}
    for i, tok in enumerate(tokens):
        if i in before:
            pos[("open", before[i])] = len(words)
            words.append(before[i])
        words.append(tok)
        if i in after:
            pos[("close", after[i])] = len(words)
            words.append(after[i])
    return (words, pos[("open", HEAD_MARK)], pos[("close", HEAD_MARK)],
            pos[("open", TAIL_MARK)], pos[("close", TAIL_MARK)])


def tokenize_marked(tokenizer: WordPieceTokenizer, record):
    """Tokenize a marked FewRel record.

    Returns dict(ids, head_marker, tail_marker, head_span, tail_span) with
    positions in the id list (which includes [CLS] at 0).  head_span /
    tail_span are [start, end) of the pieces strictly between the markers.
    Raises SkipRecord('overlap' | 'too_long' | 'empty_span')."""
    words, ho, hc, to, tc = mark_record(record)
    text = " ".join(words)
    # Position bookkeeping: tokenize word by word (BertPreTokenizer splits on
    # whitespace first, so this concatenation equals tokenizing `text`;
    # asserted below).
    pieces = []
    word_start = []
    for w in words:
        word_start.append(len(pieces) + 1)  # +1 for [CLS]
        pieces.extend(tokenizer.tokenize(w))
    ids = [tokenizer.cls_id] + [tokenizer.vocab[p] for p in pieces] + [tokenizer.sep_id]
    assert ids == tokenizer.encode(text), "per-word tokenization mismatch"
    if len(ids) > MAX_RELATION_PIECES:
        raise SkipRecord("too_long")
    hm, hce, tm, tce = word_start[ho], word_start[hc], word_start[to], word_start[tc]
    assert tokenizer.id_to_token[ids[hm]] == HEAD_MARK and tokenizer.id_to_token[ids[hce]] == HEAD_MARK
    assert tokenizer.id_to_token[ids[tm]] == TAIL_MARK and tokenizer.id_to_token[ids[tce]] == TAIL_MARK
    head_span = (hm + 1, hce)
    tail_span = (tm + 1, tce)
    if head_span[1] <= head_span[0] or tail_span[1] <= tail_span[0]:
        raise SkipRecord("empty_span")
    return dict(ids=ids, head_marker=hm, tail_marker=tm,
                head_span=head_span, tail_span=tail_span, text=text)


def relation_parts(hidden: np.ndarray, info) -> dict:
    """hidden: [L, H] (no padding rows).  Returns the five L2-normalised
    parts.  sentence_mean averages every token incl. [CLS], [SEP], markers."""
    hs, he = info["head_span"]
    ts, te = info["tail_span"]
    return {
        "head_marker": l2_normalize(hidden[info["head_marker"]]),
        "tail_marker": l2_normalize(hidden[info["tail_marker"]]),
        "head_mean": l2_normalize(hidden[hs:he].mean(axis=0)),
        "tail_mean": l2_normalize(hidden[ts:te].mean(axis=0)),
        "sentence_mean": l2_normalize(hidden.mean(axis=0)),
    }


def compose_representation(parts: dict, name: str) -> np.ndarray:
    return np.concatenate([parts[p] for p in REPRESENTATIONS[name]], axis=-1)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def _self_test(model_dir):
    ok = True
    grid = np.linspace(-8, 8, 400001)
    ref = np.array([math.erf(v) for v in grid])
    err = np.abs(erf(grid) - ref).max()
    print(f"erf max |error| vs math.erf on [-8, 8] (400001 pts): {err:.3e}")
    ok &= err < 1e-15
    tok = WordPieceTokenizer(os.path.join(model_dir, "vocab.txt"))
    cases = {
        "Hello, World!": ["hello", ",", "world", "!"],
        "Zürich café Ångström": None,
        "well-known": ["well", "-", "known"],
        "\u4e2d\u6587abc": None,
        "a\u0000b\tc\u200bd": None,
        "x" * 101: ["[UNK]"],
    }
    for text, expected in cases.items():
        got = tok.tokenize(text)
        mark = ""
        if expected is not None:
            mark = " OK" if got == expected else f" MISMATCH (expected {expected})"
            ok &= got == expected
        print(f"{text[:40]!r:45} -> {got}{mark}")
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sentences", nargs="*")
    ap.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    ap.add_argument("--float32", action="store_true", help="compute in float32 instead of float64")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--show", type=int, default=8, help="embedding values to print")
    args = ap.parse_args(argv)
    if args.self_test:
        ok = _self_test(args.model_dir)
        print("self-test", "passed" if ok else "FAILED")
        return 0 if ok else 1
    if not args.sentences:
        ap.error("give sentences or --self-test")
    model = Bert(args.model_dir, np.float32 if args.float32 else np.float64)
    emb = model.embed(args.sentences)
    for s, e in zip(args.sentences, emb):
        ids = model.tokenizer.encode(s)
        print(json.dumps({
            "sentence": s,
            "tokens": model.tokenizer.convert_ids(ids),
            "ids": ids,
            "embedding_head": [round(float(v), 7) for v in e[: args.show]],
        }, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
