"""Pre-training and meta-training algorithms as pure functions (paper §5)."""
from omni_jax.algorithms.maml import maml, sgd_adapt
from omni_jax.algorithms.pretrain import (cross_entropy, cross_entropy_pretrain, l2_pretrain, mse,
                                          supervised)

__all__ = ["cross_entropy", "cross_entropy_pretrain", "l2_pretrain", "maml", "mse", "sgd_adapt",
           "supervised"]
