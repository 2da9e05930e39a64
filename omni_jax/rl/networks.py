"""The Gaussian policy: an Omni-MLP for the action mean, a log-std per flow (paper §6.3).

``GaussianPolicy(action_size).apply(params, obs, flow)`` returns ``(mean,
log_std)``, ``log_std`` broadcast to the mean's shape. The mean is an
:class:`~omni_jax.nn.OmniMLP` (two Omni-Layers of 64 tanh units and an
Omni-Head); the log-std is a state-independent vector, one for each flow
(``log_std_joint``, ``log_std_pre``, ``log_std_meta``), or a single one with
``omni=False`` (the plain policy of Baseline and MAML).
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from omni_jax.nn import OmniMLP
from omni_jax.nn.flows import check_flow, each_flow


class GaussianPolicy(nn.Module):
    action_size: int
    widths: Sequence[int] = (64, 64)
    activation: str = "tanh"
    omni: bool = True
    init_log_std: float = 0.0
    kernel_init: str = "lecun_normal"   # or "xavier_uniform": pytorch-maml-rl's (omni_jax.nn.models.KERNEL_INITS)

    @nn.compact
    def __call__(self, obs, flow: str = "joint"):
        check_flow(flow)
        mean = OmniMLP(self.action_size, tuple(self.widths), self.activation, omni=self.omni,
                       kernel_init=self.kernel_init, name="mean")(obs, flow)
        init = nn.initializers.constant(self.init_log_std)
        log_std = each_flow(self, flow, lambda n: self.param(f"log_std_{n}", init, (self.action_size,)),
                            omni=self.omni)
        return mean, jnp.broadcast_to(log_std, mean.shape)


def gaussian_log_prob(actions, mean, log_std):
    """log N(actions; mean, exp(log_std)^2), summed over the action axis."""
    z = (actions - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * jnp.square(z) - log_std - 0.5 * math.log(2 * math.pi), axis=-1)


def gaussian_kl(mean0, log_std0, mean1, log_std1):
    """KL(N(mean0, σ0²) ‖ N(mean1, σ1²)) of diagonal Gaussians, summed over the action axis."""
    var0, var1 = jnp.exp(2 * log_std0), jnp.exp(2 * log_std1)
    return jnp.sum(log_std1 - log_std0 + (var0 + jnp.square(mean0 - mean1)) / (2 * var1) - 0.5, axis=-1)
