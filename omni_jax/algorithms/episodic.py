"""What the metric meta-training algorithms (MatchingNet, RelationNet, GNN) share.

Each such algorithm is a pure ``(params, episode, flow) -> (loss, outputs)``
(like :func:`omni_jax.algorithms.protonet.protonet`) built from two functions
of the network:

* ``embed_fn(params, x, flow) -> features``: the flow's backbone (vectors, or
  feature maps for RelationNet);
* ``module_fn(params, flow, support_f, support_onehot, query_f) -> out``: the
  algorithm's learnable module (MatchingNet's full context embeddings,
  RelationNet's relation module, the GNN), whose parameters live in the
  network's ``params`` (one copy per flow in an Omni-Net), applied to a
  batch of tasks ``[T, ...]``.

``episode`` is ``{"support": {"x" [T, S, ...], "y" [T, S]}, "query": {"x" [T, Q, ...],
"y" [T, Q]}}`` with labels in ``[0, n_way)``.

The BatchNorm layers of the relation module and the GNN (:func:`head_batch_norm`,
config field ``model.head_bn``) normalise in one of two ways:

* ``"batch"``: each episode with its own statistics, in training and at test alike, with no
  running averages. This is what both reference codes do, with one episode per batch:
  Tseng et al.'s (``methods/gnn.py`` l. 41, 65-74, ``methods/gnnnet.py`` l. 17,
  ``methods/relationnet.py`` l. 69: ``BatchNorm(..., track_running_stats=False)``, which uses
  the batch's statistics in ``eval()`` mode too) and Chen et al.'s relation module (its
  ``BatchNorm2d(momentum=1)`` keeps running statistics, but ``test.py`` scores RelationNet on
  saved features with the model never put in ``eval()`` mode, l. 146-152; only MAML's branch
  calls ``model.eval()``, l. 143). A test episode's predictions depend on that episode only, however
  many test episodes are batched together, but on all of it: each query's on the episode's
  other queries too (transductive, like the BatchNorm of MAML's test-time head).
* ``"running"``: the statistics of the whole batch of episodes in training, running averages
  (momentum 0.9) at test (Garcia & Bruna's GNN code, whose BatchNorm layers are PyTorch's
  defaults, tested in ``eval()`` mode).
"""
from __future__ import annotations

from typing import Any, Callable, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from omni_jax.nn.layers import BatchNorm

Params = Any
EmbedFn = Callable[[Params, jnp.ndarray, str], jnp.ndarray]
ModuleFn = Callable[..., Any]
OUTPUTS = ("logits", "probs")


def check_outputs(outputs: str) -> str:
    if outputs not in OUTPUTS:
        raise ValueError(f"outputs must be logits or probs, got {outputs!r}")
    return outputs


def check_episode(episode: dict) -> Tuple[int, int, int]:
    """``(tasks, support size, query size)``; raises ``ValueError`` on inconsistent shapes."""
    xs, ys = episode["support"]["x"], episode["support"]["y"]
    xq, yq = episode["query"]["x"], episode["query"]["y"]
    if ys.ndim != 2 or yq.ndim != 2 or xs.shape[:2] != ys.shape or xq.shape[:2] != yq.shape \
            or xs.shape[0] != xq.shape[0] or xs.shape[2:] != xq.shape[2:]:
        raise ValueError(f"episode shapes: support x {xs.shape} y {ys.shape}, query x {xq.shape} y {yq.shape}; "
                         "expected [T, S, ...], [T, S], [T, Q, ...], [T, Q]")
    return xs.shape[0], xs.shape[1], xq.shape[1]


def embed_episode(embed_fn: EmbedFn, params: Params, episode: dict, flow: str):
    """All images of all tasks through ``embed_fn`` as one batch (one forward pass, shared
    BatchNorm statistics, as ProtoNet); returns ``(support [T, S, ...], query [T, Q, ...])``."""
    t, s, q = check_episode(episode)
    xs, xq = episode["support"]["x"], episode["query"]["x"]
    x = jnp.concatenate([xs.reshape((t * s,) + xs.shape[2:]), xq.reshape((t * q,) + xq.shape[2:])])
    f = embed_fn(params, x, flow)
    return f[:t * s].reshape((t, s) + f.shape[1:]), f[t * s:].reshape((t, q) + f.shape[1:])


def one_hot(labels: jnp.ndarray, n_way: int, dtype=jnp.float32) -> jnp.ndarray:
    return jax.nn.one_hot(labels, n_way, dtype=dtype)


HEAD_BN = ("batch", "running")


def check_head_bn(head_bn: str) -> str:
    if head_bn not in HEAD_BN:
        raise ValueError(f"head_bn must be one of {', '.join(HEAD_BN)}, got {head_bn!r}")
    return head_bn


class EpisodeBatchNorm(nn.Module):
    """BatchNorm with each episode's own statistics and no running averages (PyTorch's
    ``BatchNorm(track_running_stats=False)`` applied to one episode at a time).

    ``x [E·B, ..., C]`` whose leading axis holds ``episodes`` = E consecutive blocks of B rows, one
    block per episode: each block is normalised over all its axes but the channel axis with its
    own mean and biased variance, ``y = (x - mean) / √(var + ε) · scale + bias``. Only ``scale``
    and ``bias`` are variables (parameters); training and test compute the same thing."""

    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x, episodes: int):
        c = x.shape[-1]
        if x.shape[0] % episodes:
            raise ValueError(f"EpisodeBatchNorm: a leading axis of {x.shape[0]} is not {episodes} equal episodes")
        scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        xf = x.astype(jnp.promote_types(x.dtype, jnp.float32)).reshape(episodes, -1, c)
        mean = jnp.mean(xf, axis=1, keepdims=True)
        var = jnp.var(xf, axis=1, keepdims=True)
        y = (xf - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias
        return y.reshape(x.shape).astype(x.dtype)


def head_batch_norm(head_bn: str, name: str, x: jnp.ndarray, episodes: int, train: bool) -> jnp.ndarray:
    """The BatchNorm named ``name`` of a meta algorithm's module (called inside the module's compact
    ``__call__``): ``"batch"``, :class:`EpisodeBatchNorm` over the ``episodes`` blocks of ``x``'s
    leading axis; ``"running"``, :class:`omni_jax.nn.layers.BatchNorm` (the batch's statistics in
    training, running averages at test). See the module doc."""
    if check_head_bn(head_bn) == "batch":
        return EpisodeBatchNorm(name=name)(x, episodes)
    return BatchNorm(name=name)(x, use_running_average=not train)
