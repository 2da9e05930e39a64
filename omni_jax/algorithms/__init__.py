"""Pre-training and meta-training algorithms as pure functions (paper §5)."""
from omni_jax.algorithms.gnn import gnn
from omni_jax.algorithms.maml import maml, sgd_adapt
from omni_jax.algorithms.matchingnet import matchingnet
from omni_jax.algorithms.pretrain import (cross_entropy, cross_entropy_pretrain, l2_pretrain, mse,
                                          supervised)
from omni_jax.algorithms.protonet import protonet
from omni_jax.algorithms.relationnet import relationnet

__all__ = ["cross_entropy", "cross_entropy_pretrain", "gnn", "l2_pretrain", "maml", "matchingnet", "mse",
           "protonet", "relationnet", "sgd_adapt", "supervised"]
