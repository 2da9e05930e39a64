"""Prototypical Networks (Snell et al.; paper §5.2, Eq. 20).

The prototype of class k is the mean embedding of its support points,
c_k = mean_{(x, y) in S_k} F_meta(x); a query is classified by a softmax over
negative distances to the prototypes, trained with cross-entropy:

    l_meta = -log( exp(-d(F(x), c_y)) / sum_k exp(-d(F(x), c_k)) )     (Eq. 20)

``d`` is the Euclidean distance by default (``distance="euclidean"``, as
``torch.cdist`` in PyTorch few-shot libraries such as easyfsl) or its square
(``"squared"``, Snell et al. and Chen et al.). Both rank the prototypes alike,
so a single head predicts the same classes with either; they differ in
training (the gradient and the softmax's sharpness) and wherever softmax
probabilities are compared or averaged (R_meta, the ensemble head). At the
glyph benchmark's 1,000-step budget the Euclidean distance trains better on
validation classes (``docs/classification_accuracy.md``).

The algorithm is a pure ``(params, episode, flow) -> (loss, outputs)`` like
every algorithm of ``omni_jax.algorithms``; its outputs are the query logits
``-d`` (the target of the self-distillation term R_meta, Eq. 13).
"""
from __future__ import annotations

from typing import Any, Callable, Tuple

import jax
import jax.numpy as jnp
import optax

Params = Any
EmbedFn = Callable[[Params, jnp.ndarray, str], jnp.ndarray]


def squared_distances(queries: jnp.ndarray, centres: jnp.ndarray) -> jnp.ndarray:
    """``[..., Q, D] x [..., N, D] -> [..., Q, N]`` squared Euclidean distances."""
    qq = jnp.sum(jnp.square(queries), axis=-1)[..., :, None]
    cc = jnp.sum(jnp.square(centres), axis=-1)[..., None, :]
    qc = jnp.einsum("...qd,...nd->...qn", queries, centres)
    return jnp.maximum(qq + cc - 2.0 * qc, 0.0)


DISTANCES = ("euclidean", "squared")
SQRT_EPS = 1e-12   # euclidean_distances = sqrt(max(d², SQRT_EPS)): off by at most 1e-6, gradient finite at 0


def euclidean_distances(queries: jnp.ndarray, centres: jnp.ndarray) -> jnp.ndarray:
    """``[..., Q, D] x [..., N, D] -> [..., Q, N]`` Euclidean distances, ``sqrt(max(d², 1e-12))``.

    The guard keeps the gradient finite where a query equals a centre (d² = 0,
    where the gradient of the bare square root is infinite): there it is zero.
    """
    return jnp.sqrt(jnp.maximum(squared_distances(queries, centres), SQRT_EPS))


def distances(queries: jnp.ndarray, centres: jnp.ndarray, distance: str = "euclidean") -> jnp.ndarray:
    """:func:`euclidean_distances` or :func:`squared_distances` by name (``DISTANCES``)."""
    if distance == "euclidean":
        return euclidean_distances(queries, centres)
    if distance == "squared":
        return squared_distances(queries, centres)
    raise ValueError(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")


def prototypes(features: jnp.ndarray, labels: jnp.ndarray, n_way: int) -> jnp.ndarray:
    """Class means ``[n_way, D]`` of ``features [S, D]`` with labels in ``[0, n_way)``."""
    onehot = jax.nn.one_hot(labels, n_way, dtype=features.dtype)          # [S, N]
    sums = onehot.T @ features                                             # [N, D]
    return sums / jnp.maximum(onehot.sum(axis=0), 1.0)[:, None]


def proto_logits(support_f: jnp.ndarray, support_y: jnp.ndarray, query_f: jnp.ndarray,
                 n_way: int, distance: str = "euclidean") -> jnp.ndarray:
    """Query logits ``-d(F(x), c_k)`` of one task, ``[Q, n_way]`` (``distance``: see :func:`distances`)."""
    return -distances(query_f, prototypes(support_f, support_y, n_way), distance)


def protonet(embed_fn: EmbedFn, n_way: int, outputs: str = "logits", distance: str = "euclidean"):
    """ProtoNet meta-loss over a batch of episodes.

    ``episode`` is ``{"support": {"x", "y"}, "query": {"x", "y"}}`` with a
    leading task axis (labels in ``[0, n_way)``). All images of all tasks go
    through ``embed_fn`` as one batch (one forward pass, shared BatchNorm
    statistics). Returns ``(mean query cross-entropy, outputs [T, Q, n_way])``
    where the outputs are the logits ``-d`` or, with ``outputs="probs"``,
    their softmax (bounded, the usual target of a mean-teacher consistency
    loss; squared distances of a fresh network are in the hundreds).
    ``distance`` is ``"euclidean"`` or ``"squared"`` (see the module doc).
    """
    if outputs not in ("logits", "probs"):
        raise ValueError(f"outputs must be logits or probs, got {outputs!r}")
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")

    def meta_loss(params, episode, flow) -> Tuple[jnp.ndarray, jnp.ndarray]:
        xs, ys = episode["support"]["x"], episode["support"]["y"]
        xq, yq = episode["query"]["x"], episode["query"]["y"]
        t, s, q = xs.shape[0], xs.shape[1], xq.shape[1]
        x = jnp.concatenate([xs.reshape((t * s,) + xs.shape[2:]), xq.reshape((t * q,) + xq.shape[2:])])
        f = embed_fn(params, x, flow)
        fs, fq = f[:t * s].reshape(t, s, -1), f[t * s:].reshape(t, q, -1)
        logits = jax.vmap(lambda a, b, c: proto_logits(a, b, c, n_way, distance))(fs, ys, fq)
        loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, yq))
        return loss, (jax.nn.softmax(logits) if outputs == "probs" else logits)

    return meta_loss
