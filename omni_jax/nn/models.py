"""Omni-Net backbones and networks (paper §4.1, Eqs. 4-6).

Stacking Omni-Layers gives the three flows of the whole backbone:
F_joint (Eq. 4), F_pre (Eq. 5) and F_meta (Eq. 6); the Omni-Head then maps
each flow's representation with its own head.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence, Tuple

import flax.linen as nn
import jax.numpy as jnp

from omni_jax.nn.layers import FLOWS, OmniDense, OmniHead, activation_derivative, check_flow, flow_activation

KERNEL_INITS = {
    "lecun_normal": nn.initializers.lecun_normal,      # Flax's default, std 1/sqrt(fan_in)
    "xavier_uniform": nn.initializers.xavier_uniform,  # PyTorch's nn.init.xavier_uniform_ (pytorch-maml-rl)
    "he_normal": nn.initializers.he_normal,
    # PyTorch's nn.Linear default, kaiming_uniform_(a=sqrt(5)): U(+-1/sqrt(fan_in)), std 1/sqrt(3 fan_in).
    # (PyTorch also draws the bias from that range; ours start at zero.)
    "torch": lambda: nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
}


def kernel_initializer(name: str):
    """A Dense kernel initializer by name (a string keeps modules and configs printable)."""
    if name not in KERNEL_INITS:
        raise ValueError(f"unknown kernel_init {name!r}; expected one of {', '.join(KERNEL_INITS)}")
    return KERNEL_INITS[name]()


class OmniMLPBackbone(nn.Module):
    """A stack of dense Omni-Layers, each followed by its flow's activation.

    ``num_plain`` keeps the first n layers plain (shared by all flows); with
    ``omni=False`` every layer is plain.
    """

    widths: Sequence[int] = (64, 64)
    activation: str = "tanh"
    omni: bool = True
    num_plain: int = 0
    branch_rank: Optional[int] = None
    kernel_init: str = "lecun_normal"

    @nn.compact
    def __call__(self, x, flow: str = "joint"):
        check_flow(flow)
        act = flow_activation(self.activation)
        init = kernel_initializer(self.kernel_init)
        for i, w in enumerate(self.widths):
            layer_omni = self.omni and i >= self.num_plain
            x = act(OmniDense(w, branch_rank=self.branch_rank, omni=layer_omni, kernel_init=init,
                              name=f"layer{i}")(x, flow))
        return x


class OmniMLP(nn.Module):
    """Omni-Net for regression and RL: OmniMLPBackbone followed by an Omni-Head.

    ``OmniMLP(omni=False)`` is the plain MLP of the same size used by the
    Baseline, MAML, Ensemble and Joint-Training comparisons; every flow of it
    is the same function.
    """

    out_features: int = 1
    widths: Sequence[int] = (64, 64)
    activation: str = "tanh"
    omni: bool = True
    num_plain: int = 0
    branch_rank: Optional[int] = None
    kernel_init: str = "lecun_normal"   # or "xavier_uniform" (PyTorch's), see KERNEL_INITS

    @nn.compact
    def __call__(self, x, flow: str = "joint"):
        h = OmniMLPBackbone(self.widths, self.activation, self.omni, self.num_plain,
                            self.branch_rank, self.kernel_init, name="backbone")(x, flow)
        return OmniHead(self.out_features, omni=self.omni, kernel_init=kernel_initializer(self.kernel_init),
                        name="head")(h, flow)


class DenseLayer(NamedTuple):
    """One dense layer of a flow, as :func:`omni_jax.algorithms.maml.maml_dense` sees it:
    ``x @ kernel + bias``.

    ``copies`` is how many parameter tensors add up to ``kernel`` (and
    ``bias``): an Omni-Layer's pre or meta flow computes ``x (W_joint + W_flow)``,
    so an SGD step moves both by ``-lr·g`` and their sum by ``-copies·lr·g``.
    """

    kernel: jnp.ndarray
    bias: jnp.ndarray
    copies: int = 1


# (params, flow) -> (the flow's dense layers, the activation between them, its derivative or None);
# :func:`mlp_dense_layers` is one (bound to its model).
DenseLayersFn = Callable[[Any, str], Tuple[Sequence[DenseLayer], Callable, Optional[Callable]]]


def mlp_dense_layers(model: OmniMLP, params, flow: str):
    """The dense layers of one flow of an :class:`OmniMLP`, its activation and the activation's
    derivative, for :func:`omni_jax.algorithms.maml.maml_dense`.

    An Omni-Layer's joint flow is its joint chunk; its pre or meta flow is
    ``x (W_joint + W_flow) + (b_joint + b_flow)``, one dense layer whose
    weight is the sum of two parameter tensors (``copies=2``). The Omni-Head
    is the flow's own head. Low-rank branches (``branch_rank``) are not
    dense layers of this form: use the generic ``maml`` for them.
    """
    check_flow(flow)
    if model.branch_rank is not None:
        raise ValueError("mlp_dense_layers needs full-width branches (branch_rank=None)")
    p = params["params"]
    layers = []
    for i in range(len(model.widths)):
        layer = p["backbone"][f"layer{i}"]
        joint = layer["joint"]
        if flow != FLOWS[0] and model.omni and i >= model.num_plain:
            layers.append(DenseLayer(joint["kernel"] + layer[flow]["kernel"], joint["bias"] + layer[flow]["bias"], 2))
        else:
            layers.append(DenseLayer(joint["kernel"], joint["bias"], 1))
    head = p["head"][flow if model.omni else FLOWS[0]]
    layers.append(DenseLayer(head["kernel"], head["bias"], 1))
    return layers, flow_activation(model.activation), activation_derivative(model.activation)
