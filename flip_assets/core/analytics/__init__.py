"""Statistics, demographics, plots, the dataset card and the main job's summary."""
