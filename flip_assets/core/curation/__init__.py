"""The curation stages in the paper's order: face detection, keywords, the caption classifier, pairs, LLM denoising, AIGC."""
