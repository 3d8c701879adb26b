"""Dagster wiring, one package per domain; flip_assets/definitions.py merges them.

curation/  the FLIP-80M paper's curation stages, s01 ... s07 in paper order
resources.py  the resources the domains share, and build_resources, which builds them all
settings.py  how a resource takes its settings from environment variables
"""
