"""The three splits of a classification dataset: the data package's loaders, or a synthetic set.

``synthetic`` needs no files: each class is a random smooth template and its
images are noisy, shifted copies. It is for smoke runs and tests only.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from omni_jax.data.dataset import ImageDataset
from omni_jax.errors import OmniJaxError

SPLITS = ("train", "val", "test")


def synthetic_split(num_classes: int, per_class: int, size: int = 28, channels: int = 1, seed: int = 0,
                    name: str = "synthetic", noise: float = 0.35) -> ImageDataset:
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, (num_classes, 7, 7, channels))
    templates = np.repeat(np.repeat(coarse, -(-size // 7), axis=1), -(-size // 7), axis=2)[:, :size, :size]
    imgs = np.repeat(templates, per_class, axis=0)
    shift = rng.integers(-2, 3, (len(imgs), 2))
    imgs = np.stack([np.roll(im, tuple(s), axis=(0, 1)) for im, s in zip(imgs, shift)])
    imgs = np.clip(imgs + rng.normal(0, noise, imgs.shape), 0, 1)
    labels = np.repeat(np.arange(num_classes, dtype=np.int32), per_class)
    return ImageDataset((imgs * 255).astype(np.uint8), labels, [f"c{i}" for i in range(num_classes)], name=name)


def load_splits(name: str, data_dir: Optional[str], image_size: Optional[int] = -1,
                synthetic: Optional[dict] = None, split_names: Optional[Dict[str, str]] = None,
                **kwargs) -> Dict[str, ImageDataset]:
    """``{"train", "val", "test"}`` splits of dataset ``name``; ``split_names`` maps
    them to the loader's split names (e.g. ``{"test": "test/Arabic"}`` for glyphs)."""
    if name == "synthetic":
        s = dict(classes=(32, 12, 12), per_class=30, size=28, channels=1)
        s.update(synthetic or {})
        return {split: synthetic_split(n, s["per_class"], s["size"], s["channels"], seed=i + 1,
                                       name=f"synthetic/{split}")
                for i, (split, n) in enumerate(zip(SPLITS, s["classes"]))}
    from omni_jax.data.formats import load_dataset
    if data_dir is None:
        raise OmniJaxError(f"dataset {name} needs --data-dir (omni-jax never downloads datasets)")
    names = dict(zip(SPLITS, SPLITS), **(split_names or {}))
    return {split: load_dataset(name, data_dir, names[split], image_size, **kwargs) for split in SPLITS}
