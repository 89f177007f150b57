#!/usr/bin/env bash
# Relation text on FewRel 1.0 val (docs/relation-text.md): the default
# browser model (int8), 1000 episodes per setting, seed 1, each setting scored on the same
# episodes without and with relation text; zero-shot (K = 0) with text alone. Two text
# sources: pid2name.json's names and descriptions (reports/relation-text.{md,json,svg}) and
# the names alone (reports/relation-names.*). Nothing here chose the fusion rule (see
# docs/support-sets.md); FewRel val is only measured.
#   bash scripts/experiments/relation-text-report.sh          (EPISODES=N for a quicker, smaller run)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
build_tkre
model=$(bash scripts/dev/web-model.sh)
pid2name=../shared/data/fewrel/pid2name.json
names="$TKRE_CACHE/relation-names.json"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); json.dump({k: v[0] for k, v in d.items()}, open(sys.argv[2], "w"))' \
  "$pid2name" "$names"
for entry in "relation-text=$pid2name" "relation-names=$names"; do
  "$tkre" eval --data ../shared/data/fewrel/val_wiki.json --report "reports/${entry%%=*}" \
    --episodes "${EPISODES:-1000}" --seed 1 --settings 5-1,5-5,10-1,10-5,5-0,10-0 \
    --relation-descriptions "${entry#*=}" --row "default browser model (base MiniLM-L6, int8)=$model"
done
