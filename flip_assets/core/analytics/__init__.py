"""Statistics, demographics, the dataset card and the main job's summary."""
