"""Few-shot classification (paper §6.1): episodes, augmentation, training, evaluation,
and ``train_and_evaluate(config, workdir)`` on the shared pipeline."""
from omni_jax.classification.experiment import ClassificationExperiment, train_and_evaluate

__all__ = ["ClassificationExperiment", "train_and_evaluate"]
