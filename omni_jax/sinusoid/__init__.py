"""Sinusoid regression (paper §6.2): ``train_and_evaluate(config, workdir)``."""
from omni_jax.sinusoid.experiment import SinusoidExperiment, train_and_evaluate

__all__ = ["SinusoidExperiment", "train_and_evaluate"]
