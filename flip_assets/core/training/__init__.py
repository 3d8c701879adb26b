"""The face-language model: encoders, training pairs, contrastive training."""
