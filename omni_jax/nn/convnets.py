"""Convolutional Omni-Nets for few-shot classification (paper §6.1, §7.2).

Backbones, each in an Omni version (every convolution an :class:`OmniConv`
with 1x1 branches, every BatchNorm a :class:`FlowBatchNorm` with one copy per
flow) and a plain version (``omni=False``):

* ``conv4``: 4 x [3x3 conv, 64 channels, BN, ReLU, 2x2 max-pool] (Snell et al.).
* ``resnet10`` / ``resnet18``: the ResNets of Chen et al. (7x7/2 stem,
  3x3/2 max-pool, BasicBlocks [1,1,1,1] / [2,2,2,2] of widths 64-512,
  global average pool).
* ``resnet12``: the ResNet-12 of TADAM/MetaOptNet (4 blocks of three 3x3
  convs with widths 64-160-320-640, LeakyReLU(0.1), 1x1 shortcut, 2x2
  max-pool, DropBlock in the last two blocks).

``num_plain`` keeps the first n blocks plain, shared by all flows (Figure 12;
for conv4 a block is one conv layer, for the ResNets one residual block, and
the ResNet stem counts as plain as soon as ``num_plain > 0``).

``star=True`` gives the plain backbone with the Omni backbone's convolution
parameter count (ResNet-18*, Table 7): each convolution gets two extra 1x1
convolutions that are always added, so there is one flow but as many
convolution weights as the Omni version. (BatchNorm is not tripled, so the
Omni version keeps 4·C more scale/bias parameters per norm, < 0.1%.)

The 2x2 max-pool is a reshape and a max rather than ``nn.max_pool``: it gives
the same values and, on XLA:CPU, its backward pass is much cheaper than the
select-and-scatter of ``reduce_window`` (measured in
``benchmarks/classification_throughput.py``).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from omni_jax.nn.flows import check_flow, each_flow, flow_branch
from omni_jax.nn.layers import FlowBatchNorm, OmniConv, OmniHead, conv_initializer

BACKBONES = ("conv4", "resnet10", "resnet12", "resnet18")


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """2x2 max-pool with stride 2 (floor on odd sizes, like ``VALID``), as a reshape and a max."""
    b, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    x = x[:, :2 * h2, :2 * w2, :]
    return jnp.max(x.reshape(b, h2, 2, w2, 2, c), axis=(2, 4))


def max_pool_window(x: jnp.ndarray) -> jnp.ndarray:
    """The same pool through ``nn.max_pool`` (reduce_window); kept for the benchmark and tests."""
    return nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")


POOLS = {"reshape": max_pool_2x2, "window": max_pool_window}


class DropBlock(nn.Module):
    """DropBlock (Ghiasi et al., 2018), as used by ResNet-12 in TADAM/MetaOptNet.

    Drops ``block_size`` x ``block_size`` squares with overall rate
    ``drop_rate`` and rescales the kept activations. Needs the ``dropout`` rng
    when not deterministic.
    """

    drop_rate: float = 0.1
    block_size: int = 5

    @nn.compact
    def __call__(self, x, deterministic: bool = True):
        if deterministic or self.drop_rate <= 0:
            return x
        b, h, w, c = x.shape
        bs = min(self.block_size, h, w)
        valid_h, valid_w = h - bs + 1, w - bs + 1
        gamma = self.drop_rate / (bs * bs) * (h * w) / (valid_h * valid_w)
        seeds = jax.random.bernoulli(self.make_rng("dropout"), gamma, (b, valid_h, valid_w, c))
        pad_lo, pad_hi = bs // 2, bs - 1 - bs // 2
        seeds = jnp.pad(seeds.astype(x.dtype), ((0, 0), (pad_lo, h - valid_h - pad_lo),
                                                (pad_lo, w - valid_w - pad_lo), (0, 0)))
        # Grow each seed into a block: a max over a bs x bs window, stride 1.
        block = nn.max_pool(seeds, (bs, bs), strides=(1, 1),
                            padding=((pad_hi, pad_lo), (pad_hi, pad_lo)))
        keep = 1.0 - block
        scale = keep.size / jnp.maximum(jnp.sum(keep), 1.0)
        return x * keep * jax.lax.stop_gradient(scale)


class _Kernel(nn.Module):
    """A bare conv kernel, named like the ``nn.Conv`` it stands in for (params ``{name: {"kernel"}}``)."""

    shape: Sequence[int]
    init: str = "torch"   # see omni_jax.nn.layers.conv_initializer

    @nn.compact
    def __call__(self):
        return self.param("kernel", conv_initializer(self.init), tuple(self.shape))


class FusedOmniConv(nn.Module):
    """An :class:`OmniConv` (stride 1, SAME, odd k x k main chunk, 1x1 branches) computed as one convolution.

    With stride 1 and SAME padding a 1x1 convolution is the k x k convolution
    whose kernel is zero but for its centre tap, so
    ``f_joint(x) + f_branch(x) = conv(x, W_joint + centre(W_branch))``: the
    pre- and meta-flows cost one convolution, like the joint flow. The
    parameters are exactly :class:`OmniConv`'s (``joint``/``pre``/``meta``,
    each ``{"kernel"}``), and so are the outputs and gradients up to float
    rounding (tested).
    """

    features: int
    kernel_size: Sequence[int] = (3, 3)
    omni: bool = True
    init: str = "torch"

    @nn.compact
    def __call__(self, x, flow: str = "joint"):
        check_flow(flow)
        kh, kw = self.kernel_size
        cin = x.shape[-1]
        w = _Kernel((kh, kw, cin, self.features), self.init, name="joint")()
        if self.omni:
            branch = flow_branch(self, flow, lambda b: _Kernel((1, 1, cin, self.features), self.init, name=b)())
            if branch is not None:
                w = w.at[kh // 2, kw // 2].add(branch[0, 0])
        return jax.lax.conv_general_dilated(x, w.astype(x.dtype), (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))


class StarConv(nn.Module):
    """A plain convolution carrying two extra, always-on 1x1 convolutions (ResNet-18*)."""

    features: int
    kernel_size: Sequence[int] = (3, 3)
    strides: Sequence[int] = (1, 1)
    use_bias: bool = False
    init: str = "torch"

    @nn.compact
    def __call__(self, x, flow: str = "joint"):
        init = conv_initializer(self.init)
        y = nn.Conv(self.features, tuple(self.kernel_size), tuple(self.strides), padding="SAME",
                    use_bias=self.use_bias, kernel_init=init, name="joint")(x)
        for name in ("extra_a", "extra_b"):
            y = y + nn.Conv(self.features, (1, 1), tuple(self.strides), padding="SAME", use_bias=False,
                            kernel_init=init, name=name)(x)
        return y


def _conv(features, kernel_size, strides, omni, star, name, fused=True, init="torch"):
    if star:
        return StarConv(features, kernel_size, strides, init=init, name=name)
    if fused and omni and tuple(strides) == (1, 1) and all(k % 2 == 1 for k in kernel_size):
        return FusedOmniConv(features, kernel_size, omni, init, name=name)
    return OmniConv(features, kernel_size, strides, padding="SAME", omni=omni,
                    kernel_init=conv_initializer(init), name=name)


class ConvBNAct(nn.Module):
    """Conv (Omni-Layer) -> per-flow BatchNorm -> activation."""

    features: int
    kernel_size: Sequence[int] = (3, 3)
    strides: Sequence[int] = (1, 1)
    omni: bool = True
    star: bool = False
    act: str = "relu"
    fused: bool = True
    init: str = "torch"   # the convolution's kernel initialisation (omni_jax.nn.layers.CONV_INITS)

    @nn.compact
    def __call__(self, x, flow, bn_train: bool):
        x = _conv(self.features, self.kernel_size, self.strides, self.omni, self.star, "conv", self.fused,
                  self.init)(x, flow)
        x = FlowBatchNorm(omni=self.omni, name="bn")(x, flow, use_running_average=not bn_train)
        if self.act == "relu":
            return nn.relu(x)
        if self.act == "leaky_relu":
            return nn.leaky_relu(x, 0.1)
        return x


class Conv4(nn.Module):
    """Conv-4; returns the flattened feature map (64 for 28x28 inputs, 1600 for 84x84), or the map
    itself with ``feature_map=True``. ``unpooled=2`` leaves out the max-pool of the last two blocks
    (Chen et al.'s ``Conv4NP``, the RelationNet backbone: 7x7 maps for 28x28 inputs)."""

    width: int = 64
    depth: int = 4
    omni: bool = True
    num_plain: int = 0
    star: bool = False
    pool: str = "reshape"
    fused: bool = True   # Omni-Layers as one convolution each (FusedOmniConv)
    unpooled: int = 0    # the last n blocks have no max-pool
    conv_init: str = "torch"   # kernel initialisation of every convolution (omni_jax.nn.layers.CONV_INITS)

    @nn.compact
    def __call__(self, x, flow: str = "joint", *, train: bool = False, bn_train: Optional[bool] = None,
                 feature_map: bool = False):
        bn_train = train if bn_train is None else bn_train
        pool = POOLS[self.pool]
        for i in range(self.depth):
            x = ConvBNAct(self.width, omni=self.omni and i >= self.num_plain, star=self.star, fused=self.fused,
                          init=self.conv_init, name=f"block{i}")(x, flow, bn_train)
            if i < self.depth - self.unpooled:
                x = pool(x)
        return x if feature_map else x.reshape(x.shape[0], -1)


class BasicBlock(nn.Module):
    """The ResNet-10/18 residual block (two 3x3 convs, 1x1 projection when the shape changes)."""

    features: int
    strides: int = 1
    omni: bool = True
    star: bool = False
    conv_init: str = "torch"

    @nn.compact
    def __call__(self, x, flow, bn_train: bool):
        s, i = (self.strides, self.strides), self.conv_init
        y = ConvBNAct(self.features, (3, 3), s, self.omni, self.star, "relu", init=i, name="conv1")(x, flow, bn_train)
        y = ConvBNAct(self.features, (3, 3), (1, 1), self.omni, self.star, "none", init=i, name="conv2")(y, flow, bn_train)
        if self.strides != 1 or x.shape[-1] != self.features:
            x = ConvBNAct(self.features, (1, 1), s, self.omni, self.star, "none", init=i, name="shortcut")(x, flow, bn_train)
        return nn.relu(x + y)


class ResNet(nn.Module):
    """ResNet-10 (``stages=(1,1,1,1)``) and ResNet-18 (``(2,2,2,2)``) of Chen et al."""

    stages: Sequence[int] = (2, 2, 2, 2)
    widths: Sequence[int] = (64, 128, 256, 512)
    omni: bool = True
    num_plain: int = 0
    star: bool = False
    conv_init: str = "torch"

    @nn.compact
    def __call__(self, x, flow: str = "joint", *, train: bool = False, bn_train: Optional[bool] = None,
                 feature_map: bool = False):
        bn_train = train if bn_train is None else bn_train
        x = ConvBNAct(self.widths[0], (7, 7), (2, 2), self.omni and self.num_plain == 0, self.star,
                      init=self.conv_init, name="stem")(x, flow, bn_train)
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        k = 0
        for si, (n, w) in enumerate(zip(self.stages, self.widths)):
            for bi in range(n):
                stride = 2 if (si > 0 and bi == 0) else 1
                x = BasicBlock(w, stride, self.omni and k >= self.num_plain, self.star, self.conv_init,
                               name=f"block{k}")(x, flow, bn_train)
                k += 1
        return x if feature_map else jnp.mean(x, axis=(1, 2))


class ResNet12Block(nn.Module):
    features: int
    omni: bool = True
    star: bool = False
    drop_rate: float = 0.0
    block_size: int = 1
    conv_init: str = "torch"

    @nn.compact
    def __call__(self, x, flow, bn_train: bool, train: bool):
        y, ci = x, self.conv_init
        for i, act in enumerate(("leaky_relu", "leaky_relu", "none")):
            y = ConvBNAct(self.features, (3, 3), (1, 1), self.omni, self.star, act, init=ci,
                          name=f"conv{i + 1}")(y, flow, bn_train)
        x = ConvBNAct(self.features, (1, 1), (1, 1), self.omni, self.star, "none", init=ci,
                      name="shortcut")(x, flow, bn_train)
        y = nn.leaky_relu(x + y, 0.1)
        y = max_pool_2x2(y)
        return DropBlock(self.drop_rate, self.block_size, name="dropblock")(y, deterministic=not train)


class ResNet12(nn.Module):
    """ResNet-12 with DropBlock (rate ``drop_rate``, block 5 in the last two blocks)."""

    widths: Sequence[int] = (64, 160, 320, 640)
    omni: bool = True
    num_plain: int = 0
    star: bool = False
    drop_rate: float = 0.1
    conv_init: str = "torch"

    @nn.compact
    def __call__(self, x, flow: str = "joint", *, train: bool = False, bn_train: Optional[bool] = None,
                 feature_map: bool = False):
        bn_train = train if bn_train is None else bn_train
        for i, w in enumerate(self.widths):
            last_two = i >= len(self.widths) - 2
            x = ResNet12Block(w, self.omni and i >= self.num_plain, self.star,
                              self.drop_rate if last_two else 0.0, 5 if last_two else 1, self.conv_init,
                              name=f"block{i}")(x, flow, bn_train, train)
        return x if feature_map else jnp.mean(x, axis=(1, 2))


def make_backbone(name: str, *, omni: bool = True, num_plain: int = 0, star: bool = False,
                  width: int = 64, pool: str = "reshape", drop_rate: float = 0.1, depth: int = 4,
                  fused: bool = True, unpooled: int = 0, conv_init: str = "torch") -> nn.Module:
    """A backbone by name (``BACKBONES``); raises ``ValueError`` for an unknown one. ``unpooled``
    (Conv-4 only) leaves out the max-pool of the last blocks (``Conv4NP``). ``conv_init`` names the
    kernel initialisation of every convolution (``omni_jax.nn.layers.CONV_INITS``; an unknown name is
    an ``OmniJaxError`` naming ``model.conv_init``)."""
    conv_initializer(conv_init)
    if unpooled and name != "conv4":
        raise ValueError(f"unpooled applies to conv4 only, not {name}")
    if star and omni:
        raise ValueError("star=True is the plain backbone with the Omni parameter count; it needs omni=False")
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; expected one of {sorted(POOLS)}")
    if name == "conv4":
        return Conv4(width=width, depth=depth, omni=omni, num_plain=num_plain, star=star, pool=pool, fused=fused,
                     unpooled=unpooled, conv_init=conv_init)
    if name == "resnet10":
        return ResNet(stages=(1, 1, 1, 1), omni=omni, num_plain=num_plain, star=star, conv_init=conv_init)
    if name == "resnet18":
        return ResNet(stages=(2, 2, 2, 2), omni=omni, num_plain=num_plain, star=star, conv_init=conv_init)
    if name == "resnet12":
        return ResNet12(omni=omni, num_plain=num_plain, star=star, drop_rate=drop_rate, conv_init=conv_init)
    raise ValueError(f"unknown backbone {name!r}; expected one of {', '.join(BACKBONES)}")


def cosine_classifier_logits(x: jnp.ndarray, v: jnp.ndarray, g: jnp.ndarray, scale: float) -> jnp.ndarray:
    """Baseline++'s scores (Chen et al.'s ``distLinear``): ``scale · <x/(|x|+1e-5), g_k v_k/|v_k|>``,
    ``[B, D] x v [D, N], g [N] -> [B, N]``; the class weight's norm ``g_k`` is learned (PyTorch's
    ``WeightNorm(dim=0)``)."""
    xn = x / (jnp.linalg.norm(x, axis=-1, keepdims=True) + 1e-5)
    w = v * (g / jnp.linalg.norm(v, axis=0))[None, :]
    return scale * (xn @ w)


def cosine_scale(num_classes: int) -> float:
    """Chen et al.'s fixed scale of the cosine classifier: 2 for up to 200 classes, 10 above."""
    return 2.0 if num_classes <= 200 else 10.0


class CosineDense(nn.Module):
    """Baseline++'s classifier (:func:`cosine_classifier_logits`), ``nn.Linear``'s init for ``v``
    (uniform ±1/√D) and ``g = |v_k|``."""

    features: int

    @nn.compact
    def __call__(self, x):
        d = x.shape[-1]
        bound = 1.0 / d ** 0.5
        v = self.param("v", lambda k, s: jax.random.uniform(k, s, minval=-bound, maxval=bound), (d, self.features))
        g = self.param("g", lambda k: jnp.linalg.norm(v, axis=0))
        return cosine_classifier_logits(x, v, g, cosine_scale(self.features))


class OmniCosineHead(nn.Module):
    """The Omni-Head (§4.1) with Baseline++'s cosine classifiers: one per flow (one with ``omni=False``)."""

    features: int
    omni: bool = True

    @nn.compact
    def __call__(self, h, flow: str = "joint"):
        return each_flow(self, flow, lambda n: CosineDense(self.features, name=n)(h), omni=self.omni)


HEAD_KINDS = ("linear", "cosine")
META_FLOWS = ("joint", "meta")   # the flows a meta-training algorithm trains (Eq. 7, Eq. 12)


class FewShotNet(nn.Module):
    """A backbone F and an Omni-Head H (Figure 4) for classification.

    ``output``:
      * ``"features"``: the flow's representation F_flow(x) (what ProtoNet, MatchingNet, the GNN
        and the test-time heads use);
      * ``"feature_map"``: the un-pooled feature map ``[B, h, w, c]`` (RelationNet's);
      * ``"logits"``: H_flow(F_flow(x)) over the ``num_classes`` training
        classes (the pre-training head: linear, Eq. 16, or Baseline++'s cosine with ``head_kind="cosine"``);
      * ``"episode"``: an ``episode_ways``-way head (MAML's head, Eq. 19).

    ``meta_module`` is the meta-training algorithm's learnable module, if it has one (MatchingNet's
    full context embeddings, RelationNet's relation module, the GNN): a Flax module called as
    ``module(support_f [T,S,...], support_onehot [T,S,N], query_f [T,Q,...], train)``. The network
    holds one copy per flow a meta algorithm trains (joint and meta) in an Omni-Net, one otherwise;
    :meth:`meta_head` applies the flow's copy. ``meta_input`` is the output the module reads
    (``"features"`` or ``"feature_map"``) and ``meta_ways`` the N it is initialised with.

    ``twin=True`` holds two independent plain networks, one for the pre-flow
    and one for the meta-flow (the "Ensemble" comparison: a pre-trained and a
    meta-trained model trained side by side); the joint flow is the first.
    """

    backbone: nn.Module
    num_classes: int
    omni: bool = True
    episode_ways: int = 0
    twin: bool = False
    head_kind: str = "linear"
    meta_module: Optional[nn.Module] = None
    meta_input: str = "features"
    meta_ways: int = 0

    def setup(self):
        if self.head_kind not in HEAD_KINDS:
            raise ValueError(f"head_kind must be one of {HEAD_KINDS}, got {self.head_kind!r}")
        make_head = ((lambda n, omni: OmniCosineHead(n, omni=omni)) if self.head_kind == "cosine"
                     else (lambda n, omni: OmniHead(n, omni=omni)))
        if self.twin:
            if self.meta_module is not None:
                raise ValueError("twin networks (Ensemble) take no meta module")
            self.twin_backbones = [self.backbone.clone(name=None), self.backbone.clone(name=None)]
            self.twin_heads = [make_head(self.num_classes, False), make_head(self.num_classes, False)]
            if self.episode_ways:
                self.twin_episode = [OmniHead(self.episode_ways, omni=False),
                                     OmniHead(self.episode_ways, omni=False)]
        else:
            self.body = self.backbone.clone(name=None)
            self.head = make_head(self.num_classes, self.omni)
            if self.episode_ways:
                self.episode_head = OmniHead(self.episode_ways, omni=self.omni)
            if self.meta_module is not None:
                if self.meta_ways <= 0 or self.meta_input not in ("features", "feature_map"):
                    raise ValueError(f"a meta module needs meta_ways > 0 and meta_input features or feature_map, "
                                     f"got {self.meta_ways}, {self.meta_input!r}")
                flows = META_FLOWS if self.omni else ("joint",)
                self.meta_heads = {f: self.meta_module.clone(name=None) for f in flows}

    def _meta_copy(self, flow: str) -> str:
        check_flow(flow)
        if not self.omni:
            return "joint"
        if flow not in META_FLOWS:
            raise ValueError(f"the meta module exists for the flows {META_FLOWS}, not {flow!r}")
        return flow

    def meta_head(self, support_f, support_onehot, query_f, flow: str = "joint", *, train: bool = False):
        """The flow's meta module on a batch of tasks (see the class doc)."""
        if self.meta_module is None:
            raise ValueError("this network has no meta module")
        return self.meta_heads[self._meta_copy(flow)](support_f, support_onehot, query_f, train=train)

    def __call__(self, x, flow: str = "joint", *, output: str = "logits", train: bool = False,
                 bn_train: Optional[bool] = None):
        check_flow(flow)
        if output not in ("features", "feature_map", "logits", "episode"):
            raise ValueError(f"output must be features, feature_map, logits or episode, got {output!r}")
        if self.twin:
            if output == "feature_map":
                raise ValueError("twin networks give no feature maps")
            if self.is_initializing():
                outs = [self._twin(i, x, output, train, bn_train) for i in (0, 1)]
                return outs[1 if flow == "meta" else 0]
            return self._twin(1 if flow == "meta" else 0, x, output, train, bn_train)
        if output == "feature_map" and not self.is_initializing():
            return self.body(x, flow, train=train, bn_train=bn_train, feature_map=True)
        h = self.body(x, flow, train=train, bn_train=bn_train)
        if self.is_initializing():
            logits = self.head(h, flow)
            ep = self.episode_head(h, flow) if self.episode_ways else None
            fmap = self.body(x, flow, train=train, bn_train=bn_train, feature_map=True)
            if self.meta_module is not None:
                f = (fmap if self.meta_input == "feature_map" else h)[None]
                onehot = jax.nn.one_hot(jnp.arange(x.shape[0]) % self.meta_ways, self.meta_ways)[None]
                query = jnp.take(f, jnp.arange(self.meta_ways) % x.shape[0], axis=1)   # one query per class
                for copy in self.meta_heads.values():
                    copy(f, onehot, query, train=False)
            return {"features": h, "feature_map": fmap, "logits": logits, "episode": ep}[output]
        if output == "features":
            return h
        if output == "logits":
            return self.head(h, flow)
        return self.episode_head(h, flow)

    def _twin(self, i, x, output, train, bn_train):
        h = self.twin_backbones[i](x, "joint", train=train, bn_train=bn_train)
        if self.is_initializing():
            logits = self.twin_heads[i](h, "joint")
            ep = self.twin_episode[i](h, "joint") if self.episode_ways else None
            return {"features": h, "logits": logits, "episode": ep}[output]
        if output == "features":
            return h
        if output == "logits":
            return self.twin_heads[i](h, "joint")
        return self.twin_episode[i](h, "joint")


def count_params(tree: Any) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(tree)))
