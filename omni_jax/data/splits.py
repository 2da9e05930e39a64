"""Split names and checks that an episode can be drawn from a split.

Every loader takes ``split`` as ``train``, ``val`` or ``test``; the aliases
the original file names use (``base``, ``novel``, ``validation``) are accepted.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from omni_jax.data.dataset import ImageDataset
from omni_jax.errors import OmniJaxError

SPLITS = ("train", "val", "test")
_ALIASES = {"train": "train", "base": "train", "background": "train",
            "val": "val", "valid": "val", "validation": "val",
            "test": "test", "novel": "test", "evaluation": "test"}


def canonical_split(split: str, what: str = "dataset") -> str:
    """``train``/``val``/``test`` for a split name or one of its aliases."""
    try:
        return _ALIASES[str(split).lower()]
    except KeyError:
        raise OmniJaxError(f"{what}: unknown split {split!r}; expected one of {', '.join(SPLITS)} "
                           f"(or base/novel/validation)") from None


def check_episodes(dataset: ImageDataset, n_way: int, k_shot: int, n_query: int) -> None:
    """Raises a one-line error unless N-way K-shot episodes with ``n_query``
    queries per class can be drawn from ``dataset``.

    The split needs at least ``n_way`` classes with at least ``k_shot +
    n_query`` images each. Classes with too few images are named.
    """
    what = dataset.name or dataset.source or "dataset"
    if n_way < 1 or k_shot < 1 or n_query < 0:
        raise OmniJaxError(f"{what}: n_way and k_shot must be >= 1 and n_query >= 0, "
                           f"got {n_way}, {k_shot}, {n_query}")
    counts = dataset.class_counts()
    need = k_shot + n_query
    usable = int((counts >= need).sum())
    if dataset.num_classes < n_way:
        raise OmniJaxError(f"{what}: the split has {dataset.num_classes} classes, fewer than n_way={n_way}")
    short = [i for i in range(dataset.num_classes) if counts[i] < need]
    if short:
        names = ", ".join(f"{dataset.class_names[i]} ({counts[i]})" for i in short[:5])
        more = f" and {len(short) - 5} more" if len(short) > 5 else ""
        raise OmniJaxError(f"{what}: {len(short)} class(es) have fewer than k_shot+n_query={need} images: "
                           f"{names}{more}; {usable} classes are usable" +
                           (f" (use drop_small_classes to keep them)" if usable >= n_way else ""))


def drop_small_classes(dataset: ImageDataset, min_images: int) -> ImageDataset:
    """The dataset without the classes that have fewer than ``min_images`` images, relabelled."""
    counts = dataset.class_counts()
    keep = np.flatnonzero(counts >= min_images)
    if len(keep) == dataset.num_classes:
        return dataset
    return select_classes(dataset, keep)


def select_classes(dataset: ImageDataset, classes: Sequence[int]) -> ImageDataset:
    """The images of ``classes`` (indices into ``dataset.class_names``), relabelled 0..len-1."""
    classes = np.asarray(classes, dtype=np.int64)
    remap = np.full(dataset.num_classes, -1, dtype=np.int64)
    remap[classes] = np.arange(len(classes))
    mask = remap[dataset.labels] >= 0
    return ImageDataset(dataset.images[mask], remap[dataset.labels[mask]].astype(np.int32),
                        [dataset.class_names[i] for i in classes], name=dataset.name, source=dataset.source)
