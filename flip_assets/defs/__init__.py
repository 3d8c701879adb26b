"""Dagster wiring, one package per domain; flip_assets/definitions.py merges their `defs`.

Domains (each a UI group of the same name; definitions.py in each gathers its assets and checks):
curation/    the FLIP-80M paper's curation stages, s01 ... s07 in paper order, their job and sensor
release/     the dataset a user downloads, its safety filters and deduplication
analytics/   statistics, demographics and the dataset card of the release
training/    face-text training pairs and the contrastive checkpoint
evaluation/  the paper's downstream tables and the ablation

Shared modules, which every domain may import and which import no domain (test_layout.py):
asset_keys.py        every asset's key, once; a domain names another's assets by these
storage.py           FlipStorage: where every asset's files are written, checked and published
shards.py            the shard partitions, ShardSource and per_shard (range runs of shards)
settings.py          how a resource takes its settings from environment variables
shared_resources.py  the resources two domains use (TrainingResource, PerplexityResource)
checks.py            asset checks declared once: name, description, blocking, verdict
automation.py        the automation conditions and the sensor that evaluates them
executors.py         where a run's steps execute (in process, or Kubernetes pods)

resources.py, the aggregator: builds every resource from the environment (build_resources) for
flip_assets/definitions.py.
"""
