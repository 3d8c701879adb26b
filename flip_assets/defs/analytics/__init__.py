"""Analytics: what the release holds. The demographics of its faces (Figure 6 of the paper), the
statistics over every stage and the release (DuckDB), and the dataset card that ships with it.

The modules wire the plain logic of flip_assets/core/ (demographics, statistics,
statistics_report, dataset_card) into assets and checks; definitions.py gathers them.
"""
