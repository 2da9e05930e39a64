"""The classification Omni-Net and its apply functions, with BatchNorm statistics threaded through.

BatchNorm statistics are not parameters, yet the algorithms are pure
functions of ``params``. :class:`StatsThread` closes over the running
statistics for the duration of one traced loss evaluation:

* every forward pass of the *student's* parameters (the very pytree the
  loss was called with) normalises with the batch's statistics and chains
  its update of the running averages of the flow it ran; the final
  statistics are returned as auxiliary output of the loss. The joint flow's
  statistics see the mini-batch and then the episode.
* the EMA teacher's forward passes, and MAML's inner-loop and query passes
  (adapted parameters, inside ``vmap``/``scan``), also normalise with the
  batch's statistics but update nothing. So the teacher normalises exactly
  as the student does on the same data, and only its weights are averaged
  (Eq. 9); it keeps no running statistics of its own.

At test time the ProtoNet and fine-tuned heads embed with the running
averages of their flow; MAML's head adapts and predicts with the batch
statistics of the task (the transductive BatchNorm of the original MAML),
since MAML's inner loop never updates running averages.
"""
from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from omni_jax.classification.methods import MethodSpec
from omni_jax.nn.convnets import FewShotNet, make_backbone


def build_net(spec: MethodSpec, backbone: str, num_classes: int, episode_ways: int, *,
              num_plain: int = 0, star: bool = False, width: int = 64, pool: str = "reshape",
              drop_rate: float = 0.1, depth: int = 4) -> FewShotNet:
    bb = make_backbone(backbone, omni=spec.omni, num_plain=num_plain, star=star, width=width, pool=pool,
                       drop_rate=drop_rate, depth=depth)
    return FewShotNet(bb, num_classes=num_classes, omni=spec.omni,
                      episode_ways=episode_ways if spec.meta == "maml" else 0, twin=spec.twin)


def init_variables(net: FewShotNet, key: jax.Array, image_shape) -> dict:
    x = jnp.zeros((2,) + tuple(image_shape), jnp.float32)
    k1, k2 = jax.random.split(key)
    return net.init({"params": k1, "dropout": k2}, x)


class StatsThread:
    """Apply functions for one traced loss evaluation (see the module doc)."""

    def __init__(self, net: FewShotNet, student: Any, batch_stats: Any, rng: jax.Array):
        self.net, self.student, self.stats, self.rng, self.calls = net, student, batch_stats, rng, 0

    def apply(self, params, x, flow: str, output: str):
        rngs = {"dropout": jax.random.fold_in(self.rng, self.calls)}
        self.calls += 1
        out, new = self.net.apply({"params": params, "batch_stats": self.stats}, x, flow, output=output,
                                  train=True, mutable=["batch_stats"], rngs=rngs)
        if params is self.student:
            self.stats = new["batch_stats"]
        return out

    def fn(self, output: str):
        return lambda params, x, flow: self.apply(params, x, flow, output)


def eval_apply(net: FewShotNet, variables: dict, x, flow: str, output: str = "features",
               batch_statistics: bool = False):
    """Inference forward pass: running averages, or the batch's statistics (MAML's head)."""
    if batch_statistics:
        out, _ = net.apply(variables, x, flow, output=output, train=False, bn_train=True,
                           mutable=["batch_stats"])
        return out
    return net.apply(variables, x, flow, output=output, train=False)
