"""Offline evaluation (`rag eval`): retrieval, answer, abstention, citation and cost metrics per
prompt template.

- `data`: the datasets (JSONL question sets, SQuAD v2 files, BEIR folders) read into `EvalSet`s;
- `metrics`: the metric functions;
- `results`: the records of a run and how they add up to a template's scores;
- `runner`: the run itself (`open_rag`, `run_eval`);
- `report`: the table and the report folder.

The package imports none of them, so that reading a dataset or scoring answers does not load
the pipeline.
"""
