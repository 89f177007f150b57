# Sourced by the training scripts: the pre-training / distillation corpus of the
# experiments in docs/training.md (the paper's released EDKG explanations and SCDG samples, plus FewRel 2.0's
# unlabelled PubMed sentences), as `--corpus` flags.
data=../shared/data
corpus=(--corpus "$data/tkre-synthetic/llm_corpus.json" --corpus "$data/tkre-synthetic/llm_da_8.jsonl"
        --corpus "$data/fewrel/pubmed_unsupervised.json")
