"""Training: face-text training pairs and the contrastive checkpoint (paper 4.1)."""
