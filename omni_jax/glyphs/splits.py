"""The glyph benchmark's protocols: which classes each split holds.

Each protocol has ``train``, ``val`` and ``test`` class lists; a shape group
(:func:`omni_jax.glyphs.select.shape_groups`: case pairs and look-alikes)
always stays on one side.

- ``cross_task``: characters are disjoint. ``train`` and ``val`` are the
  background scripts' classes (``val`` 15% of them, by shape group) and
  ``test`` the evaluation scripts' (as Omniglot splits alphabets; see
  :data:`~omni_jax.glyphs.scripts.BACKGROUND`).
- ``cross_domain``: train on Latin, Greek and Cyrillic (80% of their
  classes), and the other scripts' classes are split 50/50 by shape group
  into ``val`` and ``test`` within each script, the analogue of mini-ImageNet
  -> CUB; ``test_in`` holds the other 20% of Latin/Greek/Cyrillic, for
  in-domain accuracy.
- ``loo_<group>``: one script group left out as ``test``; the others'
  classes split 85/15 into ``train`` and ``val``.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from omni_jax.glyphs.scripts import BACKGROUND, GROUPS, SOURCE_DOMAIN, group_of
from omni_jax.glyphs.select import split_groups


def make_splits(class_script: Sequence[str], groups: Sequence[int], seed: int = 0) -> Dict[str, Dict[str, List[int]]]:
    """The class lists of every protocol (see the module docstring); whole shape groups stay on one side."""
    scripts = np.asarray(class_script)
    groups = np.asarray(groups)
    ids = np.arange(len(scripts))

    def divide(members: np.ndarray, fractions, salt: int) -> List[np.ndarray]:
        if len(members) == 0:
            return [members for _ in fractions]
        part = np.asarray(split_groups(groups[members], fractions, seed * 1000 + salt))
        return [members[part == p] for p in range(len(fractions))]

    out: Dict[str, Dict[str, List[int]]] = {}
    background = np.isin(scripts, BACKGROUND)
    train, val = divide(ids[background], (85, 15), 1)
    out["cross_task"] = {"train": train, "val": val, "test": ids[~background]}
    source = np.isin(scripts, SOURCE_DOMAIN)
    train, test_in = divide(ids[source], (80, 20), 2)
    val, test = [], []
    for k, s in enumerate(sorted(set(scripts[~source]))):
        v, t = divide(ids[scripts == s], (50, 50), 100 + k)
        val.append(v)
        test.append(t)
    cat = lambda parts: np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)  # noqa: E731
    out["cross_domain"] = {"train": train, "val": cat(val), "test": cat(test), "test_in": test_in}
    script_group = np.asarray([group_of(s) for s in scripts])
    for k, g in enumerate(GROUPS):
        held = script_group == g
        if not held.any() or held.all():
            continue
        train, val = divide(ids[~held], (85, 15), 200 + k)
        out[f"loo_{g}"] = {"train": train, "val": val, "test": ids[held]}
    return {p: {s: sorted(int(i) for i in v) for s, v in parts.items()} for p, parts in out.items()}
