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
since MAML's inner loop never updates running averages. The relation module
and the GNN normalise as ``model.head_bn`` says: each episode with its own
statistics in training and at test (``"batch"``, Tseng et al.'s code), or
with running averages at test (``"running"``).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from omni_jax.classification.methods import PRETRAIN_ALGORITHMS, MethodSpec, meta_algorithm_of
from omni_jax.nn.convnets import BACKBONES as PACKAGE_BACKBONES
from omni_jax.nn.convnets import FewShotNet, make_backbone

BackboneFactory = Callable[..., nn.Module]
BACKBONES: Dict[str, BackboneFactory] = {}


def register_backbone(name: str, factory: BackboneFactory, *, replace: bool = False) -> BackboneFactory:
    """Registers a backbone (``model.backbone=<name>``, ``--backbone <name>``).

    ``factory(omni=..., num_plain=..., star=..., width=..., pool=..., drop_rate=..., depth=...,
    unpooled=..., conv_init=...)`` returns a Flax module called as ``module(x, flow, train=...,
    bn_train=..., feature_map=False)`` -> ``[B, d]`` features (``[B, h, w, c]`` with
    ``feature_map=True``), with ``omni=False`` a plain network of one flow; it may ignore the
    options it has no use for (accept ``**options``). ``omni_jax.omnify`` makes a plain Flax
    network tri-flow for it. Returns ``factory``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a backbone name must be an identifier, got {name!r}")
    if name in BACKBONES and not replace:
        raise ValueError(f"a backbone named {name!r} is already registered (replace=True to replace it)")
    BACKBONES[name] = factory
    return factory


for _name in PACKAGE_BACKBONES:
    register_backbone(_name, lambda _n=_name, **options: make_backbone(_n, **options))


class FlaxBackbone(nn.Module):
    """A plain Flax feature extractor as a classification backbone (:func:`omnified_backbone`):
    ``net(x, train=...) -> [B, d]`` features, made tri-flow by :func:`omni_jax.omnify` when
    ``omni``. Its ``train`` is the backbone's BatchNorm mode (``bn_train``, else ``train``). It
    gives no feature maps (RelationNet needs them): asking for one is an error."""

    net: nn.Module
    omni: bool = True
    train_arg: str = "train"

    @nn.compact
    def __call__(self, x, flow: str = "joint", *, train: bool = False, bn_train: Optional[bool] = None,
                 feature_map: bool = False):
        from omni_jax.nn import check_flow
        check_flow(flow)
        kw = {self.train_arg: train if bn_train is None else bn_train}
        h = self.net(x, flow=flow, **kw) if self.omni else self.net(x, **kw)
        if feature_map:
            if not self.is_initializing():
                raise ValueError("this backbone (a Flax feature extractor) gives features, not feature maps; "
                                 "use a method that embeds features (every one but RelationNet)")
            return h[:, None, None, :]
        return h


def omnified_backbone(make: Callable[[], nn.Module], *, train_arg: str = "train", **omnify_options) -> BackboneFactory:
    """A backbone factory (:func:`register_backbone`) of a plain Flax network ``make()`` (a module whose
    ``__call__(x, train=...)`` returns ``[B, d]`` features, written with plain ``nn.Conv``,
    ``nn.Dense`` and norms): ``omni_jax.omnify(make(), num_plain=model.num_plain, **omnify_options)``
    for the Omni methods, ``make()`` itself for the plain ones."""

    def factory(*, omni: bool = True, num_plain: int = 0, star: bool = False, **unused) -> nn.Module:
        if star:
            raise ValueError("model.star (a widened plain backbone) is not defined for a Flax backbone")
        if not omni:
            return FlaxBackbone(make(), omni=False, train_arg=train_arg)
        from omni_jax.nn.transform import omnify
        return FlaxBackbone(omnify(make(), num_plain=num_plain, **omnify_options), omni=True, train_arg=train_arg)

    return factory


def meta_module(spec: MethodSpec, *, fce: bool = True, relation_hidden: int = 8, gnn_embed_dim: int = 128,
                gnn_features: int = 96, gnn_graph: str = "class_set",
                head_bn: str = "batch") -> Tuple[Optional[nn.Module], str]:
    """The meta algorithm's learnable module (``None`` if it has none: ProtoNet, MAML, MatchingNet
    without full context embeddings) and the backbone output it reads. ``head_bn``: the BatchNorm of
    the relation module and the GNN (``omni_jax.algorithms.episodic.head_batch_norm``)."""
    algorithm = meta_algorithm_of(spec)
    options = dict(fce=fce, relation_hidden=relation_hidden, gnn_embed_dim=gnn_embed_dim,
                   gnn_features=gnn_features, gnn_graph=gnn_graph, head_bn=head_bn)
    module = algorithm.module(options) if algorithm.module is not None else None
    return module, algorithm.input


def build_net(spec: MethodSpec, backbone: str, num_classes: int, episode_ways: int, *,
              num_plain: int = 0, star: bool = False, width: int = 64, pool: str = "reshape",
              drop_rate: float = 0.1, depth: int = 4, fce: bool = True, relation_hidden: int = 8,
              gnn_embed_dim: int = 128, gnn_features: int = 96, gnn_graph: str = "class_set",
              conv_init: str = "torch", head_bn: str = "batch") -> FewShotNet:
    """The method's network: the backbone (Conv-4 without the last two max-pools for RelationNet,
    Chen et al.'s ``Conv4NP``), the pre-training head of ``spec.pretrain``, MAML's episode head, and
    the meta algorithm's module (see :func:`meta_module`); ``conv_init`` names the initialisation of
    every convolution of the backbone (``omni_jax.nn.layers.CONV_INITS``)."""
    algorithm = meta_algorithm_of(spec)
    unpooled = min(algorithm.conv4_unpooled, depth) if backbone == "conv4" else 0
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; expected one of {', '.join(BACKBONES)}")
    bb = BACKBONES[backbone](omni=spec.omni, num_plain=num_plain, star=star, width=width, pool=pool,
                             drop_rate=drop_rate, depth=depth, unpooled=unpooled, conv_init=conv_init)
    module, meta_input = meta_module(spec, fce=fce, relation_hidden=relation_hidden, gnn_embed_dim=gnn_embed_dim,
                                     gnn_features=gnn_features, gnn_graph=gnn_graph, head_bn=head_bn)
    return FewShotNet(bb, num_classes=num_classes, omni=spec.omni,
                      episode_ways=episode_ways if algorithm.episode_head else 0, twin=spec.twin,
                      head_kind=PRETRAIN_ALGORITHMS[spec.pretrain].head, meta_module=module, meta_input=meta_input,
                      meta_ways=episode_ways if module is not None else 0)


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

    def module(self, params, flow: str, *args):
        """The flow's meta module (``FewShotNet.meta_head``) in training mode, statistics threaded as above."""
        out, new = self.net.apply({"params": params, "batch_stats": self.stats}, *args, flow, train=True,
                                  method="meta_head", mutable=["batch_stats"])
        if params is self.student:
            self.stats = new["batch_stats"]
        return out


def eval_module(net: FewShotNet, variables: dict, flow: str, *args):
    """The flow's meta module at test time (its BatchNorm with running averages, or each episode's
    statistics with ``head_bn="batch"``)."""
    return net.apply(variables, *args, flow, train=False, method="meta_head")


def eval_apply(net: FewShotNet, variables: dict, x, flow: str, output: str = "features",
               batch_statistics: bool = False):
    """Inference forward pass: running averages, or the batch's statistics (MAML's head)."""
    if batch_statistics:
        out, _ = net.apply(variables, x, flow, output=output, train=False, bn_train=True,
                           mutable=["batch_stats"])
        return out
    return net.apply(variables, x, flow, output=output, train=False)
