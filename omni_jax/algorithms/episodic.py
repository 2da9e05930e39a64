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
"""
from __future__ import annotations

from typing import Any, Callable, Tuple

import jax
import jax.numpy as jnp

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
