"""The release domain: the dataset a user downloads (paper 3.2), with its safety filters and deduplication."""
