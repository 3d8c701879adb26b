"""Curation: from web image-caption shards to face-text pairs, one module per stage of the paper.

The stage modules only wire the plain logic of flip_assets/core/ into assets and checks;
definitions.py gathers them with the shard partitions, job and sensor.
"""
