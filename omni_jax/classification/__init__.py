"""Few-shot classification (paper §6.1): episodes, augmentation, training, evaluation, CLI."""
