"""The pipeline's logic as plain Python (no Dagster import), testable on its own."""
