"""Episodes and mini-batches, sampled on the device inside jit (paper §6.1).

A split is moved to the device once, as uint8 images plus a class table
(the image indices of each class, padded); episodes and mini-batches are then
drawn from a PRNG key by gathers, so the training step has no per-image
Python work and no host-to-device copies: the whole input pipeline runs in
the same compiled program as the step (this is the prefetch).

* :func:`sample_episode`: N-way K-shot Q-query; N distinct classes among
  those with at least K+Q images (``omni_jax.data.splits.check_episodes``
  makes a split with too few classes or images an error before training), K+Q distinct images of each, labels
  0..N-1 in class-major order. A split of several training domains uploaded
  with ``by_domain=True`` (Tseng et al.'s multi-domain episodes) draws each
  episode's classes from one domain, the domain uniform among those with
  N eligible classes: the domains are balanced, whatever their class counts.
* :func:`sample_batch`: the standard mini-batch (batch 64 in the paper),
  uniform over the images of the same training classes.
"""
from __future__ import annotations

from typing import Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np

from omni_jax.data.dataset import ImageDataset


@flax.struct.dataclass
class DeviceSplit:
    images: jnp.ndarray        # uint8 [N, H, W, C]
    labels: jnp.ndarray        # int32 [N]
    class_table: jnp.ndarray   # int32 [C, M]: image indices of each class, padded with 0
    class_counts: jnp.ndarray  # int32 [C]
    domain_classes: Optional[jnp.ndarray] = None   # bool [D, C]: the classes of each domain (episodes by domain)

    @property
    def num_classes(self) -> int:
        return self.class_table.shape[0]


def to_device(ds: ImageDataset, by_domain: bool = False) -> DeviceSplit:
    """Uploads a split and builds its class table; with ``by_domain``, a split merged from several
    domains (``ds.class_domain``) gives episodes of one domain each (:func:`sample_episode`)."""
    labels = np.asarray(ds.labels, np.int32)
    counts = np.bincount(labels, minlength=ds.num_classes).astype(np.int32)
    m = max(int(counts.max()) if len(counts) else 1, 1)
    table = np.zeros((ds.num_classes, m), np.int32)
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for c in range(ds.num_classes):
        table[c, :counts[c]] = order[starts[c]:starts[c] + counts[c]]
    domains = None
    if by_domain and ds.class_domain is not None and len(ds.domain_names) > 1:
        domains = jnp.asarray(np.arange(len(ds.domain_names))[:, None] == np.asarray(ds.class_domain)[None, :])
    return DeviceSplit(images=jnp.asarray(ds.images), labels=jnp.asarray(labels),
                       class_table=jnp.asarray(table), class_counts=jnp.asarray(counts), domain_classes=domains)


def sample_episode(key: jax.Array, split: DeviceSplit, n_way: int, k_shot: int, n_query: int) -> dict:
    """One episode ``{"support": {"x" [N*K,H,W,C] uint8, "y"}, "query": {"x" [N*Q,...], "y"}, "classes"}``."""
    k_cls, k_img = jax.random.split(key)
    per = k_shot + n_query
    eligible = split.class_counts >= per
    if split.domain_classes is not None:   # one domain per episode, uniform over those that can give one
        k_cls, k_dom = jax.random.split(k_cls)
        member = split.domain_classes & eligible[None, :]
        ok = member.sum(axis=1) >= n_way
        domain = jax.random.choice(k_dom, member.shape[0], p=ok / jnp.maximum(ok.sum(), 1))
        eligible = member[domain]
    classes = jax.random.choice(k_cls, split.num_classes, (n_way,), replace=False,
                                p=eligible / jnp.maximum(eligible.sum(), 1))
    m = split.class_table.shape[1]
    u = jax.random.uniform(k_img, (n_way, m))
    u = jnp.where(jnp.arange(m)[None, :] < split.class_counts[classes][:, None], u, 2.0)
    pick = jnp.argsort(u, axis=1)[:, :per]                                   # [N, K+Q] distinct slots
    idx = jnp.take_along_axis(split.class_table[classes], pick, axis=1)      # [N, K+Q] image indices
    x = split.images[idx]                                                     # [N, K+Q, H, W, C]
    y = jnp.broadcast_to(jnp.arange(n_way, dtype=jnp.int32)[:, None], (n_way, per))
    flat = lambda a: a.reshape((-1,) + a.shape[2:])
    return {"support": {"x": flat(x[:, :k_shot]), "y": flat(y[:, :k_shot])},
            "query": {"x": flat(x[:, k_shot:]), "y": flat(y[:, k_shot:])},
            "classes": classes}


def sample_batch(key: jax.Array, split: DeviceSplit, batch_size: int) -> dict:
    """A standard mini-batch ``{"x" [B,H,W,C] uint8, "y" [B]}`` with the split's own labels."""
    idx = jax.random.randint(key, (batch_size,), 0, split.images.shape[0])
    return {"x": split.images[idx], "y": split.labels[idx]}
