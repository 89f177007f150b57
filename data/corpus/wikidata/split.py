"""Chooses the relations of the Wikidata synthetic corpus and its development split.

Reads FewRel's pid2name.json (Wikidata properties) and val_wiki.json (only its relation ids),
and writes, beside this file:
- fewrel-val-relations.txt: FewRel 1.0 val's 16 properties, never synthesised or trained on;
- relations.txt: every other labelled property that links two things (Wikimedia/Wikidata
  bookkeeping properties left out), in a fixed shuffled order: the synthesis run goes through
  them in this order, so a corpus stopped at any point covers a random sample of relations;
- dev-relations.txt: the first 40 of that order, held out of training to choose settings
  and stop training.

    python3 data/corpus/wikidata/split.py ../shared/data/fewrel
"""

import json
import random
import re
import sys
from pathlib import Path

SEED = 20
DEV = 40
# Properties about Wikimedia/Wikidata itself (a name or description that speaks of them, or a
# "list"/"category" item), which no sentence of running text states.
BOOKKEEPING = re.compile(r"wikidata|wikimedia|commons category|wikiproject|\blist\b|\bcategory\b", re.I)


def main(fewrel: Path) -> None:
    here = Path(__file__).resolve().parent
    pid2name = json.loads((fewrel / "pid2name.json").read_text())
    val = sorted(json.loads((fewrel / "val_wiki.json").read_text()), key=lambda p: int(p[1:]))
    keep = sorted(
        (
            pid
            for pid, (name, description) in pid2name.items()
            if pid not in val
            and name.strip()
            and name != "None"
            and not BOOKKEEPING.search(name)
            and not re.search(r"wikidata|wikimedia", description, re.I)
        ),
        key=lambda p: int(p[1:]),
    )
    random.Random(SEED).shuffle(keep)
    (here / "fewrel-val-relations.txt").write_text("".join(f"{p}\n" for p in val))
    (here / "relations.txt").write_text("".join(f"{p}\n" for p in keep))
    (here / "dev-relations.txt").write_text("".join(f"{p}\n" for p in keep[:DEV]))
    print(f"{len(keep)} relations ({DEV} development), {len(val)} FewRel val relations excluded")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/fewrel"))
