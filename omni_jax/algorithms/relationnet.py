"""Relation Networks (Sung et al. 2018), as in Chen et al.'s ``relationnet.py``.

The backbone gives feature maps ``[h, w, c]`` (for Conv-4, Chen et al.'s
``Conv4NP``: no max-pool in the last two blocks). For each class k the support
maps are averaged into z_k (Chen et al.; Sung et al. sum them), and the
relation score of a query x̂ and class k is

    r_k(x̂) = g_φ( C(z_k, f(x̂)) )                                     (Sung et al. Eq. 1)

with C the concatenation along channels (class map first) and g_φ the
relation module (:class:`RelationModule`): two conv blocks [3x3 conv c, BN,
ReLU, 2x2 max-pool] and two fully connected layers (ReLU, hidden size 8, then
1 with a sigmoid). Maps smaller than 10x10 are padded by 1 in the convolutions
(Chen et al.'s ``RelationModule``: ``padding = 1 if input_size[1] < 10 and
input_size[2] < 10 else 0``, for the 7x7 maps of a ResNet at 224 px), so the
module needs maps of at least 4x4 (10x10 without padding): Conv-4 without its
last two max-pools at 84 px gives 21x21 maps (3x3 after the blocks), ResNet-10/18
at 224 px 7x7 (1x1), ResNet-12 at 84 px 5x5 (1x1); ResNet-10/18 at 84 px give 3x3
maps, too small (Chen et al. and Tseng et al. train them at 224 px). (Chen et al.'s
``ConvNetNopool`` leaves its first two convolutions unpadded: 19x19 maps at 84 px, also 3x3
after the blocks, so the same fully connected layer.) Its layers start from Flax's
initialisers, not Chen et al.'s ``init_layer`` (convolutions N(0, 2/(9·c_out))). Its BatchNorm
follows ``bn`` (config field ``model.head_bn``; see
:mod:`omni_jax.algorithms.episodic`): Chen et al.'s and Tseng et al.'s codes normalise
each episode with its own statistics in training and at test. Trained with the mean squared
error against one-hot targets:

    φ, θ = argmin Σ_{x̂, k} (r_k(x̂) - 1[y(x̂) = k])²                    (Sung et al. Eq. 2)

averaged over queries and classes (``nn.MSELoss``). Outputs (R_meta's
target): the scores ``r [T, Q, N]`` in [0, 1] (``outputs="probs"``) or their
pre-sigmoid values (``"logits"``). The scores do not depend on the order of
the support set.
"""
from __future__ import annotations

from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from omni_jax.algorithms.episodic import EmbedFn, ModuleFn, check_outputs, embed_episode, head_batch_norm, one_hot


def class_maps(support_f: jnp.ndarray, support_onehot: jnp.ndarray) -> jnp.ndarray:
    """Mean support map of each class: ``[T, S, h, w, c] x [T, S, N] -> [T, N, h, w, c]``."""
    sums = jnp.einsum("tsn,tshwc->tnhwc", support_onehot, support_f)
    return sums / jnp.maximum(support_onehot.sum(axis=1), 1.0)[:, :, None, None, None]


def relation_pairs(class_f: jnp.ndarray, query_f: jnp.ndarray) -> jnp.ndarray:
    """Every (query, class) pair concatenated along channels, class first: ``[T, Q, N, h, w, 2c]``."""
    t, n = class_f.shape[:2]
    q = query_f.shape[1]
    cls = jnp.broadcast_to(class_f[:, None], (t, q) + class_f.shape[1:])
    qry = jnp.broadcast_to(query_f[:, :, None], (t, q, n) + query_f.shape[2:])
    return jnp.concatenate([cls, qry], axis=-1)


def relation_targets(query_y: jnp.ndarray, n_way: int) -> jnp.ndarray:
    """The MSE targets: ``1[y = k]``, ``[T, Q, N]``."""
    return one_hot(query_y, n_way)


def _pool(x):
    b, h, w, c = x.shape
    x = x[:, :2 * (h // 2), :2 * (w // 2)]
    return jnp.max(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))


class RelationModule(nn.Module):
    """g_φ on all (query, class) pairs: ``(support_f [T,S,h,w,c], support_onehot [T,S,N], query_f
    [T,Q,h,w,c], train) -> pre-sigmoid scores [T, Q, N]``. BatchNorm as ``bn`` says:
    ``"batch"`` (each episode's statistics, training and test; Tseng et al.) or ``"running"``
    (the batch's statistics in training, running averages at test); see
    :func:`omni_jax.algorithms.episodic.head_batch_norm`."""

    hidden: int = 8
    bn: str = "batch"

    @nn.compact
    def __call__(self, support_f, support_onehot, query_f, train: bool = False):
        if support_f.ndim != 5 or query_f.ndim != 5 or support_f.shape[2:] != query_f.shape[2:]:
            raise ValueError("RelationNet needs feature maps [T, S, h, w, c] and [T, Q, h, w, c] from the backbone, "
                             f"got {support_f.shape} and {query_f.shape}")
        t, q = query_f.shape[:2]
        n = support_onehot.shape[-1]
        h, w, c = support_f.shape[2:]
        pad = 1 if (h < 10 and w < 10) else 0
        size = lambda s: ((s - 2 + 2 * pad) // 2 - 2 + 2 * pad) // 2
        if size(h) < 1 or size(w) < 1:
            raise ValueError(
                f"feature maps of {h}x{w} are too small for the relation module's two conv blocks (each a 3x3 "
                "convolution, padded by 1 when the maps are under 10x10, and a 2x2 max-pool): it needs maps of at "
                "least 4x4 (10x10 unless both sides are under 10); give the backbone larger images "
                "(config field data.image_size: Chen et al. and Tseng et al. give ResNet-10/18 224x224 images, "
                "7x7 maps; Conv-4 at 84x84 gives 21x21)")
        x = relation_pairs(class_maps(support_f, support_onehot), query_f).reshape(t * q * n, h, w, 2 * c)
        for i in range(2):
            x = nn.Conv(c, (3, 3), padding=[(pad, pad), (pad, pad)], name=f"conv{i}")(x)
            x = head_batch_norm(self.bn, f"bn{i}", x, t, train)     # one block of Q·N pairs per episode
            x = _pool(nn.relu(x))
        x = nn.relu(nn.Dense(self.hidden, name="fc1")(x.reshape(x.shape[0], -1)))
        return nn.Dense(1, name="fc2")(x).reshape(t, q, n)


def relationnet(embed_fn: EmbedFn, module_fn: ModuleFn, n_way: int, outputs: str = "logits"):
    """RelationNet meta-loss over a batch of episodes: ``(mean squared error of the scores against
    one-hot targets, outputs [T, Q, n_way])`` (see the module doc). ``embed_fn`` gives feature maps;
    ``module_fn(params, flow, support_f, support_onehot, query_f)`` applies the flow's
    :class:`RelationModule`."""
    check_outputs(outputs)

    def meta_loss(params, episode, flow) -> Tuple[jnp.ndarray, jnp.ndarray]:
        fs, fq = embed_episode(embed_fn, params, episode, flow)
        logits = module_fn(params, flow, fs, one_hot(episode["support"]["y"], n_way, fs.dtype), fq)
        scores = jax.nn.sigmoid(logits)
        loss = jnp.mean(jnp.square(scores - relation_targets(episode["query"]["y"], n_way)))
        return loss, (scores if outputs == "probs" else logits)

    return meta_loss
