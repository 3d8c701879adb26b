"""Evaluation: the paper's downstream tables (4.2) for the trained checkpoint and the ablation."""
