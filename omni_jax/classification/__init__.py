"""Few-shot classification (paper §6.1): episodes, augmentation, training, evaluation,
and ``train_and_evaluate(config, workdir)`` on the shared pipeline.

Open registries: :func:`register_meta_algorithm` (a meta-training algorithm, and with it the
methods ``<its method>`` and ``omni_<name>``), :func:`register_pretrain` and
:func:`register_backbone`."""
from omni_jax.classification.experiment import ClassificationExperiment, train_and_evaluate
from omni_jax.classification.methods import (MetaAlgorithm, PretrainAlgorithm, method_names, register_meta_algorithm,
                                             register_pretrain)
from omni_jax.classification.model import omnified_backbone, register_backbone

__all__ = ["ClassificationExperiment", "MetaAlgorithm", "PretrainAlgorithm", "method_names", "omnified_backbone", "register_backbone",
           "register_meta_algorithm", "register_pretrain", "train_and_evaluate"]
