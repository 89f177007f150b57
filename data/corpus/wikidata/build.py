"""Builds the training and development files of the Wikidata synthetic corpus, and checks that
nothing of FewRel 1.0 val leaks into them.

Reads, beside this file, samples.jsonl and paraphrases.jsonl (`tkre synthesize` output) and
dev-relations.txt, and FewRel's val_wiki.json and pid2name.json. Writes:
- train.jsonl: records of the training relations, minus any that leaks (below), labelled by
  property id (`relation`; the name is `relation_name`);
- dev.jsonl: records of the development relations (choosing settings, stopping training);
- leak-check.json: what was compared and what was found;
- yield.md: per relation, prompts, samples asked, valid, paraphrases and rejections by
  reason (from the runs' .report.json files), and the totals. A record leaks when its sentence
  is a val sentence (compared as lower-cased words), shares a run of 12 words with one, or
  names a val entity pair (in either order); it is dropped. A val relation in the corpus is
  an error: split.py keeps them out.

    python3 data/corpus/wikidata/build.py ../shared/data/fewrel
"""

import json
import re
import sys
from pathlib import Path

NGRAM = 12


def words(text):
    return re.findall(r"\w+", text.lower())


def read_lines(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(fewrel: Path) -> None:
    here = Path(__file__).resolve().parent
    pid2name = json.loads((fewrel / "pid2name.json").read_text())
    val = json.loads((fewrel / "val_wiki.json").read_text())
    name_to_pid = {name: pid for pid, (name, _) in pid2name.items() if name != "None"}
    dev = set((here / "dev-relations.txt").read_text().split())

    val_sentences, val_ngrams, val_pairs = set(), set(), set()
    for instances in val.values():
        for instance in instances:
            w = words(" ".join(instance["tokens"]))
            val_sentences.add(" ".join(w))
            val_ngrams.update(tuple(w[i : i + NGRAM]) for i in range(len(w) - NGRAM + 1))
            head, tail = instance["h"][0].lower(), instance["t"][0].lower()
            val_pairs.update({(head, tail), (tail, head)})

    records = read_lines(here / "samples.jsonl") + read_lines(here / "paraphrases.jsonl")
    train, development, leaks = [], [], []
    relations_train, relations_dev = set(), set()
    for record in records:
        pid = name_to_pid.get(record["relation"])
        if pid is None:
            raise SystemExit(f"relation {record['relation']!r} is not in pid2name.json")
        if pid in val:
            raise SystemExit(f"FewRel val relation {pid} ({record['relation']}) is in the corpus")
        w = words(record["text"])
        reasons = []
        if " ".join(w) in val_sentences:
            reasons.append("val sentence")
        if any(tuple(w[i : i + NGRAM]) in val_ngrams for i in range(len(w) - NGRAM + 1)):
            reasons.append(f"{NGRAM} words of a val sentence")
        if (record["subj"].lower(), record["obj"].lower()) in val_pairs:
            reasons.append("val entity pair")
        if reasons:
            leaks.append({"text": record["text"], "subj": record["subj"], "obj": record["obj"], "why": reasons})
            continue
        # Labelled by property id, so pid2name.json is the relation text file for training.
        record = {**record, "relation": pid, "relation_name": record["relation"]}
        if pid in dev:
            development.append(record)
            relations_dev.add(pid)
        else:
            train.append(record)
            relations_train.add(pid)

    def write(name, items):
        (here / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items))

    write("train.jsonl", train)
    write("dev.jsonl", development)
    report = {
        "compared_with": "FewRel 1.0 val_wiki.json: %d sentences, %d entity pairs (either order), %d relations"
        % (len(val_sentences), len(val_pairs) // 2, len(val)),
        "records": len(records),
        "train": {"records": len(train), "relations": len(relations_train)},
        "dev": {"records": len(development), "relations": len(relations_dev)},
        "val_relations_in_corpus": 0,
        "dropped": len(leaks),
        "leaks": leaks,
    }
    (here / "leak-check.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    write_yield(here, pid2name, name_to_pid, dev, records)
    print(
        f"train {len(train)} records / {len(relations_train)} relations, dev {len(development)} / "
        f"{len(relations_dev)}, {len(leaks)} dropped as leaks of FewRel val"
    )


def write_yield(here, pid2name, name_to_pid, dev, records):
    def report(name):
        path = here / name
        return json.loads(path.read_text())["relations"] if path.exists() else {}

    types = {r["relation"]: r for r in read_lines(here / "types.jsonl")}
    samples, paraphrases = report("samples.jsonl.report.json"), report("paraphrases.jsonl.report.json")
    rows, totals = [], {"asked": 0, "valid": 0, "paraphrases": 0}
    rejected_total = {}
    for name, y in samples.items():
        pid = name_to_pid.get(name, "?")
        p = paraphrases.get(name, {})
        typed = types.get(name)
        reasons = dict(y.get("rejected", {}))
        for reason, n in reasons.items():
            rejected_total[reason] = rejected_total.get(reason, 0) + n
        rows.append(
            "| %s | %s%s | %s | %d | %d | %d | %s |"
            % (
                pid,
                name,
                " (dev)" if pid in dev else "",
                f"{typed['head_type']} -> {typed['tail_type']}" if typed else "-",
                y["asked"],
                y["valid"],
                p.get("valid", 0),
                ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items())),
            )
        )
        totals["asked"] += y["asked"]
        totals["valid"] += y["valid"]
        totals["paraphrases"] += p.get("valid", 0)
    per_relation = {}
    for r in records:
        per_relation[r["relation"]] = per_relation.get(r["relation"], 0) + 1
    enough = sum(1 for n in per_relation.values() if n >= 8)
    lines = [
        "# Yield per relation",
        "",
        "Written by `build.py` from the synthesis reports. Types: the entity types `tkre synthesize",
        "types` chose (head -> tail). Valid: samples that passed every check; paraphrases: valid",
        "rewordings of the first samples.",
        "",
        f"Relations: {len(samples)}; samples asked {totals['asked']}, valid {totals['valid']}"
        f" ({100 * totals['valid'] / max(1, totals['asked']):.0f}%); paraphrases {totals['paraphrases']};"
        f" sentences {len(records)}; relations with at least 8 sentences: {enough}.",
        "",
        "Rejections: " + ", ".join(f"{r}: {n}" for r, n in sorted(rejected_total.items(), key=lambda x: -x[1])),
        "",
        "| property | relation | types | asked | valid | paraphrases | rejected |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    (here / "yield.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/fewrel"))
