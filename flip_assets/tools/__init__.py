"""Command lines: `python -m flip_assets.tools.<name> --help`. Each parses its arguments, calls
the library (flip_assets.core, or the Dagster definitions) and prints; no logic of its own."""
