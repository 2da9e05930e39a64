"""Choosing the glyph benchmark's faces and classes from the rendered glyphs: pure numpy.

The input is a table of samples, one per (face, script, character) drawn by
:mod:`omni_jax.glyphs.render`. A *unit* is one face's rendering of one
script. In order:

1. :func:`find_duplicate_units`: a unit whose core letters look the same as
   an earlier unit's (the same design shipped twice, metric clones, a
   regular and a "book" weight) is dropped.
2. :func:`find_off_script_units`: a unit whose core letters mostly fail a
   nearest-class-mean test within their script (dingbat and decorative
   fonts that put pictures or other letters at these code points) is
   dropped; the means are recomputed and the test run again.
3. :func:`cap_families`: at most ``max_per_family`` units of one font family
   per script are kept (regular, bold, italic first).
4. :func:`merge_lookalikes`: characters of different scripts that most
   faces draw alike (Latin A, Greek Α, Cyrillic А) become one class, named
   after the script that comes first in :data:`~omni_jax.glyphs.scripts.PRIORITY`.
5. :func:`find_outlier_glyphs`: single glyphs far from the rest of their
   class (a font that puts another letter at that code point) are dropped;
   then classes drawn by fewer than ``min_faces`` faces are dropped.
6. :func:`shape_groups`: classes that are case pairs, or look alike once
   scaled to their ink box (x/X, o/O, Я/я), form one group, which a split
   keeps on one side.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np


def features(images: np.ndarray) -> np.ndarray:
    """uint8 ``[n, 28, 28]`` glyphs -> float32 ``[n, 196]``: 2x2-pooled, in [0, 1]."""
    n, h, w = images.shape
    x = images.reshape(n, h // 2, 2, w // 2, 2).astype(np.float32).mean(axis=(2, 4)) / 255.0
    return x.reshape(n, -1)


def unit_matrix(unit_ids: np.ndarray, char_ids: np.ndarray, feats: np.ndarray, num_units: int, num_chars: int):
    """Dense ``[units, chars, d]`` features and a ``[units, chars]`` mask from a sample table."""
    d = feats.shape[1]
    x = np.zeros((num_units, num_chars, d), np.float32)
    m = np.zeros((num_units, num_chars), bool)
    x[unit_ids, char_ids] = feats
    m[unit_ids, char_ids] = True
    return x, m


def pairwise_rms(x: np.ndarray, m: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean over shared characters of the per-pixel RMS difference between units, and the shared counts.

    ``x`` is ``[U, C, d]`` (zero where missing), ``m`` the ``[U, C]`` mask.
    """
    u, c, d = x.shape
    a = x.reshape(u, c * d)
    sq = (x ** 2).sum(-1)                       # [U, C]
    mf = m.astype(np.float32)
    shared = mf @ mf.T                          # [U, U]
    total = sq @ mf.T + mf @ sq.T - 2.0 * (a @ a.T)
    mean_sq = np.maximum(total, 0) / np.maximum(shared, 1) / d
    return np.sqrt(mean_sq), shared


def find_duplicate_units(x: np.ndarray, m: np.ndarray, threshold: float = 0.04, min_shared: float = 0.5) -> np.ndarray:
    """Boolean ``[U]``: the unit repeats an earlier one (RMS difference under ``threshold`` on shared letters).

    Units are in priority order: of a duplicate pair the earlier one is kept.
    """
    rms, shared = pairwise_rms(x, m)
    counts = m.sum(1)
    enough = shared >= min_shared * np.minimum(counts[:, None], counts[None, :])
    close = (rms < threshold) & enough & (shared > 0)
    dup = np.zeros(len(x), bool)
    for i in range(len(x)):
        if dup[i]:
            continue
        later = np.flatnonzero(close[i, i + 1:]) + i + 1
        dup[later] = True
    return dup


def _unit_norm(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(-1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


def ncm_accuracy(x: np.ndarray, m: np.ndarray, keep: np.ndarray, same: np.ndarray) -> np.ndarray:
    """Each unit's nearest-class-mean accuracy on its letters, the means taken over the other ``keep`` units.

    Leaving the unit's own glyphs out of the means matters for scripts with
    few faces, where a random picture would otherwise find itself.
    ``same[c, c']`` says a prediction of ``c'`` for ``c`` counts as right
    (a letter and its case partner look alike once scaled).
    """
    z = _unit_norm(x) * m[..., None]                                  # [U, C, d]
    mk = (m & keep[:, None]).astype(np.float32)                       # glyphs in the means
    total = np.einsum("uc,ucd->cd", mk, z)                            # [C, d]
    count = mk.sum(0)                                                 # [C]
    own = z * mk[..., None]                                           # the unit's own share of each mean
    cross = np.einsum("ucd,kd->uck", z, total) - np.einsum("ucd,ukd->uck", z, own)       # z_uc . (S_k - own_uk)
    norm2 = ((total ** 2).sum(-1)[None, :] - 2 * np.einsum("ukd,kd->uk", own, total)
             + (own ** 2).sum(-1))                                    # ||S_k - own_uk||^2, [U, C]
    n_left = count[None, :] - mk
    scores = cross / np.sqrt(np.maximum(norm2, 1e-12))[:, None, :]
    scores = np.where((n_left > 0)[:, None, :], scores, -np.inf)
    pred = scores.argmax(-1)                                          # [U, C]
    right = same[np.arange(x.shape[1])[None, :], pred] & m
    return right.sum(1) / np.maximum(m.sum(1), 1)


def find_off_script_units(x: np.ndarray, m: np.ndarray, same: np.ndarray, min_accuracy: float = 0.5,
                          rounds: int = 2) -> Tuple[np.ndarray, np.ndarray]:
    """Boolean ``[U]``: units that fail the nearest-class-mean test; and their accuracies."""
    keep = np.ones(len(x), bool)
    acc = np.ones(len(x))
    for _ in range(rounds):
        acc = ncm_accuracy(x, m, keep, same)
        new = acc >= min_accuracy
        if np.array_equal(new, keep):
            break
        keep = new
    return ~keep, acc


# Kept first when a family has more faces than its cap: the most different designs.
_STYLE_ORDER = (("regular", "book", "roman", "normal", "text"), ("bold",), ("italic", "oblique", "slanted"),
                ("light", "thin", "hairline"), ("condensed", "narrow", "compressed"), ("black", "heavy"))


def style_rank(style: str) -> int:
    """0 for regular faces, then bold, italic, light, condensed, black; other styles (medium, semibold) last."""
    s = style.lower().replace("-", " ")
    for i, keys in enumerate(_STYLE_ORDER):
        if any(s == k or s.startswith(k) for k in keys):
            return i
    return len(_STYLE_ORDER)


def cap_families(families: Sequence[str], styles: Sequence[str], order_key: Sequence, max_per_family: int) -> np.ndarray:
    """Boolean mask keeping at most ``max_per_family`` units per family: regular, bold, italic first."""
    idx = sorted(range(len(families)), key=lambda i: (families[i], style_rank(styles[i]), order_key[i]))
    kept, count = np.zeros(len(families), bool), {}
    for i in idx:
        f = families[i]
        if count.get(f, 0) < max_per_family:
            count[f] = count.get(f, 0) + 1
            kept[i] = True
    return kept


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)

    def groups(self) -> List[List[int]]:
        out: Dict[int, List[int]] = {}
        for i in range(len(self.parent)):
            out.setdefault(self.find(i), []).append(i)
        return [sorted(v) for _, v in sorted(out.items())]


def merge_lookalikes(class_script: Sequence[str], class_faces: Sequence[np.ndarray], class_feats: Sequence[np.ndarray],
                     threshold: float = 0.06, min_agree: float = 0.5, min_faces: int = 3,
                     candidate_cos: float = 0.9) -> List[List[int]]:
    """Groups of classes (indices) of different scripts that faces draw alike.

    Args:
      class_script: the script of each class.
      class_faces: per class, the sorted face ids that draw it.
      class_feats: per class, the ``[n, d]`` features of those faces' glyphs, aligned.
      threshold: a face draws two classes alike when the RMS difference of
        its two glyphs is under it.
      min_agree: the fraction of the faces drawing both that must draw them alike.
      min_faces: at least this many faces must draw both.
      candidate_cos: only pairs whose mean glyphs have a cosine similarity
        above it are compared face by face.

    Returns the groups of two or more classes, each sorted.
    """
    k = len(class_script)
    means = np.stack([f.mean(0) for f in class_feats])
    z = _unit_norm(means)
    cos = z @ z.T
    scripts = np.asarray(class_script)
    cand = np.argwhere((cos > candidate_cos) & (scripts[:, None] != scripts[None, :]))
    cand = cand[cand[:, 0] < cand[:, 1]]
    uf = UnionFind(k)
    for i, j in cand:
        common, ii, jj = np.intersect1d(class_faces[i], class_faces[j], assume_unique=True, return_indices=True)
        if len(common) < min_faces:
            continue
        rms = np.sqrt(np.mean((class_feats[i][ii] - class_feats[j][jj]) ** 2, axis=1))
        if np.mean(rms < threshold) >= min_agree:
            uf.union(int(i), int(j))
    return [g for g in uf.groups() if len(g) > 1]


def find_outlier_glyphs(feats: np.ndarray, labels: np.ndarray, threshold: float = 0.3) -> np.ndarray:
    """Boolean ``[n]``: glyphs whose cosine similarity to the mean of the other glyphs of their class is under ``threshold``."""
    z = _unit_norm(feats.astype(np.float32))
    k = int(labels.max()) + 1 if len(labels) else 0
    sums = np.zeros((k, z.shape[1]), np.float32)
    np.add.at(sums, labels, z)
    others = sums[labels] - z
    cos = (z * others).sum(1) / np.maximum(np.linalg.norm(others, axis=1), 1e-6)
    return cos < threshold


def shape_groups(chars: Sequence[Sequence[str]], class_script: Sequence[str], mean_feats: np.ndarray,
                 cos_threshold: float = 0.9) -> List[int]:
    """A group id per class: case pairs, and classes of one script whose mean glyphs look alike, share one."""
    k = len(chars)
    uf = UnionFind(k)
    owner = {c: i for i, cs in enumerate(chars) for c in cs}
    for i, cs in enumerate(chars):
        for c in cs:
            for other in {c.upper(), c.lower()}:
                if len(other) == 1 and other in owner:
                    uf.union(i, owner[other])
    z = _unit_norm(mean_feats)
    cos = z @ z.T
    scripts = np.asarray(class_script)
    for i, j in np.argwhere(cos > cos_threshold):
        if i < j and scripts[i] == scripts[j]:
            uf.union(int(i), int(j))
    group = [0] * k
    for g, members in enumerate(uf.groups()):
        for i in members:
            group[i] = g
    return group


def split_groups(groups: Sequence[int], fractions: Sequence[float], seed: int) -> List[int]:
    """Assigns whole groups to parts with about ``fractions`` of the classes each, deterministically.

    Returns the part of each class. Groups are shuffled with ``seed`` and
    filled greedily into the part furthest below its target.
    """
    groups = np.asarray(groups)
    ids, sizes = np.unique(groups, return_counts=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids))
    target = np.asarray(fractions, float) / np.sum(fractions) * len(groups)
    filled = np.zeros(len(fractions))
    part_of_group = {}
    for g in order:
        p = int(np.argmax(target - filled))
        part_of_group[ids[g]] = p
        filled[p] += sizes[g]
    return [part_of_group[g] for g in groups]
