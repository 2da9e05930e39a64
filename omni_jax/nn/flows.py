"""The three data flows of an Omni-Net (paper §4.1, Eq. 3) and the routing every Omni-Layer shares.

An Omni-Net is called with a static ``flow``, one of :data:`FLOWS`:

* ``"joint"``: the main chunks only, ``f_joint(x)``;
* ``"pre"`` / ``"meta"``: each main chunk plus that flow's branch, ``f_joint(x) + f_flow(x)``;
  layers like batch normalisation have one copy per flow (a_joint, a_pre, a_meta).

One ``init`` creates the parameters of all three flows, whatever flow it asks for, so one
parameter pytree serves every flow. The pieces here are what the package's own Omni-Layers
(:mod:`omni_jax.nn.layers`), its backbones and :func:`omni_jax.omnify` are written with, and
what a hand-written Omni-Layer should use:

* :func:`route`: Eq. 3 for one layer, ``joint(x) (+ branch(flow)(x))``;
* :func:`flow_branch`: the branch of a flow (``None`` for the joint flow), both branches
  created at init;
* :func:`each_flow`: the flow's own copy of something (a norm, a head, a log-std), every copy
  created at init;
* :data:`FlowApply` and :func:`flow_apply`: "apply with a flow", ``(params, x, flow) -> y``, the
  one signature the algorithms (:mod:`omni_jax.algorithms`) take a network as.

A hand-written Omni-Layer::

    class MyOmniDense(nn.Module):
        features: int

        @nn.compact
        def __call__(self, x, flow="joint"):
            return route(self, x, flow, nn.Dense(self.features, name="joint"),
                         lambda b: nn.Dense(self.features, name=b))
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, TypeVar

import flax.linen as nn

FLOWS = ("joint", "pre", "meta")
BRANCHES = ("pre", "meta")

Params = Any
# "Apply with a flow": ``(variables, x, flow) -> y``, a network as the algorithms see it.
FlowApply = Callable[[Params, Any, str], Any]

T = TypeVar("T")


def check_flow(flow: str) -> str:
    """``flow`` if it is one of :data:`FLOWS`; a ``ValueError`` naming the three otherwise."""
    if flow not in FLOWS:
        raise ValueError(f"flow must be one of {FLOWS}, got {flow!r}")
    return flow


def flow_apply(module: nn.Module, **kwargs) -> FlowApply:
    """``module.apply`` as a :data:`FlowApply`: ``(variables, x, flow) -> module.apply(variables,
    x, flow=flow, **kwargs)``. ``module`` takes the flow as a keyword (every network of the package
    and every :func:`omni_jax.omnify` result does)."""
    return lambda variables, x, flow: module.apply(variables, x, flow=flow, **kwargs)


def flow_branch(module: nn.Module, flow: str, branch: Callable[[str], T]) -> Optional[T]:
    """``branch(flow)`` for the pre- or meta-flow, ``None`` for the joint flow.

    While ``module`` initialises, ``branch(b)`` runs for both branches (``"pre"`` and ``"meta"``),
    so one ``init`` creates both, whatever flow it asks for; ``branch`` is where the caller creates
    and applies a branch (a submodule named ``b``, a parameter).
    """
    check_flow(flow)
    if module.is_initializing():
        outs = {b: branch(b) for b in BRANCHES}
        return None if flow == "joint" else outs[flow]
    return None if flow == "joint" else branch(flow)


def route(module: nn.Module, x, flow: str, joint: Callable[[Any], Any], make_branch: Callable[[str], Callable],
          *, omni: bool = True):
    """Eq. 3 for one Omni-Layer: ``joint(x)`` on the joint flow, ``joint(x) + make_branch(flow)(x)``
    on the pre- and meta-flows (both branches created at init, :func:`flow_branch`).

    ``joint`` is the main chunk ``f_joint`` (a module or any function of ``x``); ``make_branch(b)``
    returns the branch ``f_b`` (typically a submodule named ``b``). ``omni=False`` gives the
    plain layer: ``joint(x)`` on every flow, no branches.
    """
    check_flow(flow)
    y = joint(x)
    if not omni:
        return y
    b = flow_branch(module, flow, lambda name: make_branch(name)(x))
    return y if b is None else y + b


def each_flow(module: nn.Module, flow: str, copy: Callable[[str], T], *, names: Sequence[str] = FLOWS,
              omni: bool = True) -> T:
    """The flow's own copy: ``copy(flow)``; while ``module`` initialises, ``copy(n)`` runs for every
    name in ``names`` first, so one ``init`` creates every flow's copy.

    ``copy(n)`` creates and applies the copy named ``n`` (a submodule, a parameter): the
    a_joint, a_pre, a_meta of §4.1 and the Omni-Head's three heads. ``omni=False`` gives the one
    copy ``"joint"``, used by every flow.
    """
    check_flow(flow)
    if not omni:
        return copy(FLOWS[0])
    if flow not in names:
        raise ValueError(f"the copies exist for the flows {tuple(names)}, not {flow!r}")
    if module.is_initializing():
        return {n: copy(n) for n in names}[flow]
    return copy(flow)
