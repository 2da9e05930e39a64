"""The test-time new head of the pre-training algorithms (Chen et al., "A Closer Look at
Few-shot Classification", §3.1; paper §4.3 and §5.1: "fine-tuned on the support set ... with a
new classification head H_pre^new").

For a new task, a new classifier is trained on the frozen support features
with cross-entropy, exactly as Chen et al.'s ``set_forward_adaptation``: 100
epochs over the shuffled support set in batches of 4, ``torch.optim.SGD(lr=0.01,
momentum=0.9, dampening=0.9, weight_decay=1e-3)``. PyTorch's SGD step, with
g the batch gradient plus ``weight_decay * p``:

    b_1 = g_1,   b_t = momentum * b_{t-1} + (1 - dampening) * g_t   (t > 1)
    p_t = p_{t-1} - lr * b_t

(the first step is not dampened: PyTorch initialises the buffer with the
gradient itself). The last batch of an epoch may be short; it is padded and
masked so the whole loop is one ``lax.scan`` that vmaps over tasks.

The new head is a linear layer (Baseline, ``head="linear"``: ``nn.Linear``'s
uniform init) or Baseline++'s cosine classifier (``head="cosine"``, Chen et
al.'s ``distLinear``): ``s · <x/(|x|+1e-5), g_k v_k/|v_k|>`` with a class-wise
learnable norm ``g_k`` (PyTorch's ``WeightNorm(dim=0)``, initialised to
``|v_k|``) and the scale ``s`` = 2 for up to 200 classes, 10 above.

:func:`finetune_backbone_logits` adds the option of §4.3 "reusing or
fine-tuning the learned model": after the head is trained on frozen features,
the backbone and head are trained together for ``backbone_steps`` full-batch
SGD steps (momentum 0.9, learning rate ``backbone_lr``) on the support set.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from omni_jax.nn.convnets import cosine_classifier_logits, cosine_scale

HEADS = ("linear", "cosine")


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 100
    batch_size: int = 4
    lr: float = 0.01
    momentum: float = 0.9
    dampening: float = 0.9
    weight_decay: float = 1e-3
    head: str = "linear"          # "linear" (Baseline) or "cosine" (Baseline++)
    backbone_steps: int = 0       # > 0: then fine-tune backbone + head together this many steps
    backbone_lr: float = 1e-3

    def __post_init__(self):
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")


def init_head(key: jax.Array, d: int, n_way: int, head: str = "linear") -> dict:
    """A new head's parameters with PyTorch's ``nn.Linear`` init (uniform ±1/√D)."""
    bound = 1.0 / math.sqrt(d)
    kw, kb = jax.random.split(key)
    w = jax.random.uniform(kw, (d, n_way), minval=-bound, maxval=bound)
    if head == "cosine":
        return {"v": w, "g": jnp.linalg.norm(w, axis=0)}
    return {"w": w, "b": jax.random.uniform(kb, (n_way,), minval=-bound, maxval=bound)}


def head_logits(p: dict, x: jnp.ndarray) -> jnp.ndarray:
    """Logits of a head made by :func:`init_head`."""
    if "v" in p:
        return cosine_classifier_logits(x, p["v"], p["g"], cosine_scale(p["v"].shape[1]))
    return x @ p["w"] + p["b"]


def sgd_step(p: Any, buf: Any, g: Any, t: jnp.ndarray, *, lr: float, momentum: float, dampening: float,
             weight_decay: float):
    """One step of ``torch.optim.SGD`` (see the module doc); ``t`` counts steps from 0. Returns ``(p, buf)``."""
    g = jax.tree_util.tree_map(lambda gi, pi: gi + weight_decay * pi, g, p)
    first = t == 0
    buf = jax.tree_util.tree_map(lambda bi, gi: jnp.where(first, gi, momentum * bi + (1.0 - dampening) * gi),
                                 buf, g)
    p = jax.tree_util.tree_map(lambda pi, bi: pi - lr * bi, p, buf)
    return p, buf


def finetune_linear_head(key: jax.Array, support_f: jnp.ndarray, support_y: jnp.ndarray, n_way: int,
                         cfg: FinetuneConfig = FinetuneConfig()) -> dict:
    """Trains a new head (``cfg.head``) on ``support_f [S, D]``; returns its parameters
    (``{"w" [D, N], "b" [N]}`` linear, ``{"v" [D, N], "g" [N]}`` cosine)."""
    support_f, support_y = jnp.asarray(support_f), jnp.asarray(support_y)
    if support_f.ndim != 2 or support_y.shape != support_f.shape[:1]:
        raise ValueError(f"support_f must be [S, D] and support_y [S], got {support_f.shape}, {support_y.shape}")
    s, d = support_f.shape
    bs = min(cfg.batch_size, s)
    nb = math.ceil(s / bs)
    k_init, k_perm = jax.random.split(key)
    params = init_head(k_init, d, n_way, cfg.head)

    def loss_fn(p, idx, mask):
        logits = head_logits(p, support_f[idx])
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, support_y[idx])
        return jnp.sum(ce * mask) / jnp.maximum(jnp.sum(mask), 1.0)

    def batch_step(carry, xs):
        p, buf, t = carry
        idx, mask = xs
        p, buf = sgd_step(p, buf, jax.grad(loss_fn)(p, idx, mask), t, lr=cfg.lr, momentum=cfg.momentum,
                          dampening=cfg.dampening, weight_decay=cfg.weight_decay)
        return (p, buf, t + 1), None

    def epoch(carry, k):
        perm = jax.random.permutation(k, s)
        pad = nb * bs - s
        idx = jnp.concatenate([perm, jnp.zeros((pad,), perm.dtype)]).reshape(nb, bs)
        mask = jnp.concatenate([jnp.ones((s,)), jnp.zeros((pad,))]).reshape(nb, bs)
        carry, _ = jax.lax.scan(batch_step, carry, (idx, mask))
        return carry, None

    buf0 = jax.tree_util.tree_map(jnp.zeros_like, params)
    (params, _, _), _ = jax.lax.scan(epoch, (params, buf0, jnp.asarray(0, jnp.int32)),
                                     jax.random.split(k_perm, cfg.epochs))
    return params


def finetune_logits(key, support_f, support_y, query_f, n_way: int,
                    cfg: FinetuneConfig = FinetuneConfig()) -> jnp.ndarray:
    """Query logits ``[Q, n_way]`` of a new head fine-tuned on the frozen support features."""
    return head_logits(finetune_linear_head(key, support_f, support_y, n_way, cfg), query_f)


def finetune_backbone_logits(key, embed: Callable[[Any, jnp.ndarray], jnp.ndarray], params: Any,
                             support_x, support_y, query_x, n_way: int,
                             cfg: FinetuneConfig = FinetuneConfig()) -> jnp.ndarray:
    """The new head trained on frozen features (:func:`finetune_linear_head`), then backbone and
    head trained together for ``cfg.backbone_steps`` full-support SGD steps (lr ``backbone_lr``,
    momentum ``cfg.momentum``, no dampening, weight decay ``cfg.weight_decay``); query logits.

    ``embed(params, x) -> [B, D]`` is the flow's feature map of the backbone parameters ``params``.
    """
    head = finetune_linear_head(key, embed(params, support_x), support_y, n_way, cfg)

    def loss_fn(both):
        logits = head_logits(both["head"], embed(both["body"], support_x))
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, support_y))

    def step(carry, t):
        p, buf = carry
        p, buf = sgd_step(p, buf, jax.grad(loss_fn)(p), t, lr=cfg.backbone_lr, momentum=cfg.momentum,
                          dampening=0.0, weight_decay=cfg.weight_decay)
        return (p, buf), None

    both = {"head": head, "body": params}
    buf0 = jax.tree_util.tree_map(jnp.zeros_like, both)
    (both, _), _ = jax.lax.scan(step, (both, buf0), jnp.arange(cfg.backbone_steps))
    return head_logits(both["head"], embed(both["body"], query_x))
