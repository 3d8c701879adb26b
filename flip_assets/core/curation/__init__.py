"""The curation stages in the paper's order: face detection, keywords, the caption classifier (and its
face-description test), pairs, LLM denoising, AIGC."""
