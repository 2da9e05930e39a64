"""Omni-Layers (paper §4.1, Eq. 3).

An Omni-Layer holds a main chunk ``f_joint`` and two lightweight branches
``f_pre`` and ``f_meta``. It is called with a static ``flow``:

* ``"joint"`` -> ``f_joint(x)``
* ``"pre"``   -> ``f_joint(x) + f_pre(x)``
* ``"meta"``  -> ``f_joint(x) + f_meta(x)``

Initialising a module (``model.init``) creates the parameters of all three
flows at once, whatever flow the init call asks for, so one parameter pytree
serves every flow. A layer built with ``omni=False`` is a plain layer: it has
only ``f_joint`` and ignores the flow (the "keep the first n blocks plain"
option of Figure 12, and the plain networks of the comparison methods).
The routing and the init-time creation of every flow are :mod:`omni_jax.nn.flows`'s
(:func:`~omni_jax.nn.flows.route`, :func:`~omni_jax.nn.flows.each_flow`), public for
hand-written Omni-Layers; :func:`omni_jax.omnify` makes plain Flax layers into these.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from omni_jax.errors import OmniJaxError
from omni_jax.nn.flows import BRANCHES, FLOWS, check_flow, each_flow, flow_branch, route  # noqa: F401 (re-exported)

# Convolution kernel initialisations (config field model.conv_init). Fan-in = k·k·C_in.
CONV_INITS = {
    # PyTorch's nn.Conv2d default, kaiming_uniform_(a=√5): U(±1/√fan_in), std 1/√(3·fan_in)
    "torch": lambda: nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
    # He et al. by fan-in, truncated normal, std √(2/fan_in) (flax's kaiming_normal; omni-jax before issue 12)
    "he_normal": nn.initializers.kaiming_normal,
    # flax.linen.Conv's default, truncated normal, std 1/√fan_in
    "lecun_normal": nn.initializers.lecun_normal,
}


def conv_initializer(name: str) -> Callable:
    """The convolution kernel initializer named ``name`` (one of ``CONV_INITS``, the values of the
    config field ``model.conv_init``); an unknown name is an :class:`OmniJaxError` naming that field."""
    if not isinstance(name, str) or name not in CONV_INITS:
        raise OmniJaxError(f"config field model.conv_init={name!r} is unknown; expected one of "
                           f"{', '.join(CONV_INITS)}")
    return CONV_INITS[name]()


class LowRankDense(nn.Module):
    """``Dense(rank, no bias) -> Dense(features)``: a lightweight dense branch."""

    features: int
    rank: int
    dtype: Any = None

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(self.rank, use_bias=False, dtype=self.dtype, name="down")(x)
        return nn.Dense(self.features, dtype=self.dtype, name="up")(h)


class OmniDense(nn.Module):
    """Dense Omni-Layer.

    Attributes:
      features: output width of every flow.
      branch_rank: ``None`` makes each branch a full ``Dense(features)`` (the
        paper's regression/RL nets: "two Omni-Layers of size 64 in each
        flow"); an int makes it a low-rank ``Dense(rank) -> Dense(features)``
        bottleneck, the dense analogue of a 1x1 conv branch.
      omni: ``False`` gives a plain dense layer (joint chunk only).
    """

    features: int
    branch_rank: Optional[int] = None
    omni: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    dtype: Any = None

    @nn.compact
    def __call__(self, x, flow: str = "joint"):
        joint = nn.Dense(self.features, kernel_init=self.kernel_init, dtype=self.dtype, name="joint")

        def make_branch(b):
            if self.branch_rank is None:
                return nn.Dense(self.features, kernel_init=self.kernel_init, dtype=self.dtype, name=b)
            return LowRankDense(self.features, self.branch_rank, dtype=self.dtype, name=b)

        return route(self, x, flow, joint, make_branch, omni=self.omni)


class OmniConv(nn.Module):
    """Convolutional Omni-Layer: ``k x k`` main chunk, ``1 x 1`` branches.

    The branches use the main chunk's strides so their outputs add up.
    """

    features: int
    kernel_size: Sequence[int] = (3, 3)
    strides: Sequence[int] = (1, 1)
    padding: Any = "SAME"
    use_bias: bool = False
    omni: bool = True
    branch_kernel_size: Sequence[int] = (1, 1)
    kernel_init: Callable = CONV_INITS["torch"]()   # see conv_initializer
    dtype: Any = None

    @nn.compact
    def __call__(self, x, flow: str = "joint"):
        joint = nn.Conv(self.features, tuple(self.kernel_size), strides=tuple(self.strides),
                        padding=self.padding, use_bias=self.use_bias,
                        kernel_init=self.kernel_init, dtype=self.dtype, name="joint")

        def make_branch(b):
            return nn.Conv(self.features, tuple(self.branch_kernel_size), strides=tuple(self.strides),
                           padding=self.padding, use_bias=self.use_bias,
                           kernel_init=self.kernel_init, dtype=self.dtype, name=b)

        return route(self, x, flow, joint, make_branch, omni=self.omni)


class BatchNorm(nn.Module):
    """BatchNorm over every axis but the last, with ``flax.linen.BatchNorm``'s variables.

    Same parameters (``scale``, ``bias``), statistics (``batch_stats``:
    ``mean``, ``var``, the biased batch variance), momentum rule and values
    (the one-pass variance ``E[x²] - E[x]²`` that flax uses by default). The
    normalisation is folded into one multiply-add, ``x·a + b`` with ``a =
    scale/√(var+ε)`` and ``b = bias - mean·a``, which XLA:CPU runs faster than
    ``flax.linen.BatchNorm`` (measured in docs/benchmarks.md).
    """

    use_running_average: Optional[bool] = None
    momentum: float = 0.9
    epsilon: float = 1e-5
    dtype: Any = None

    @nn.compact
    def __call__(self, x, use_running_average: Optional[bool] = None):
        ura = nn.merge_param("use_running_average", self.use_running_average, use_running_average)
        c = x.shape[-1]
        axes = tuple(range(x.ndim - 1))
        ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32), (c,))
        ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32), (c,))
        scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        if ura:
            mean, var = ra_mean.value, ra_var.value
        else:
            xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
            mean = jnp.mean(xf, axis=axes)
            var = jnp.maximum(jnp.mean(jnp.square(xf), axis=axes) - jnp.square(mean), 0.0)
            if not self.is_initializing():
                m = self.momentum
                ra_mean.value = m * ra_mean.value + (1.0 - m) * mean
                ra_var.value = m * ra_var.value + (1.0 - m) * var
        a = scale * jax.lax.rsqrt(var + self.epsilon)
        y = x * a + (bias - mean * a)
        return y.astype(self.dtype or x.dtype)


class FlowBatchNorm(nn.Module):
    """One BatchNorm per flow (the a_joint, a_pre, a_meta copies of §4.1).

    Statistics live in the ``batch_stats`` collection under ``joint``, ``pre``
    and ``meta``; only the copy of the requested flow is used and updated.
    With ``omni=False`` there is a single copy (``joint``).
    """

    use_running_average: Optional[bool] = None
    momentum: float = 0.9
    epsilon: float = 1e-5
    omni: bool = True
    dtype: Any = None

    @nn.compact
    def __call__(self, x, flow: str = "joint", use_running_average: Optional[bool] = None):
        ura = nn.merge_param("use_running_average", self.use_running_average, use_running_average)
        return each_flow(self, flow, lambda n: BatchNorm(use_running_average=ura, momentum=self.momentum,
                                                         epsilon=self.epsilon, dtype=self.dtype, name=n)(x),
                         omni=self.omni)


class OmniHead(nn.Module):
    """Omni-Head (§4.1): a joint-, pre- and meta-head, one per flow.

    With ``omni=False`` there is one head, used by every flow.
    """

    features: int
    omni: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, h, flow: str = "joint"):
        return each_flow(self, flow, lambda n: nn.Dense(self.features, kernel_init=self.kernel_init, name=n)(h),
                         omni=self.omni)


def flow_activation(name: str) -> Callable[[jnp.ndarray], jnp.ndarray]:
    """Activation by name. Activations are parameter-free, so each flow's copy
    (a_joint, a_pre, a_meta) is the same function applied on its own flow."""
    table = {"tanh": jnp.tanh, "relu": nn.relu, "gelu": nn.gelu, "swish": nn.swish,
             "elu": nn.elu, "softplus": nn.softplus, "identity": lambda x: x}
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(table)}")
    return table[name]


def activation_derivative(name: str) -> Optional[Callable[[jnp.ndarray], jnp.ndarray]]:
    """The elementwise derivative of an activation of :func:`flow_activation`, where a closed form
    is cheaper than autodiff (it is for tanh and relu inside second-order MAML); ``None`` otherwise."""
    table = {"tanh": lambda z: 1.0 - jnp.square(jnp.tanh(z)),
             "relu": lambda z: (z > 0).astype(z.dtype),
             "identity": jnp.ones_like}
    return table.get(name)
