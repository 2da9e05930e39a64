"""The in-memory form every image loader returns.

Loaders of the on-disk formats (mini-ImageNet, CUB, the cross-domain JSON
splits, TFDS builders, the glyph benchmark) all produce an
:class:`ImageDataset` per split; the episode sampler and the mini-batch
stream consume it. Images are uint8 ``[N, H, W, C]`` so a whole split stays
compact on the host and on the accelerator.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from omni_jax.errors import OmniJaxError


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    images: np.ndarray          # uint8 [N, H, W, C]
    labels: np.ndarray          # int32 [N], in [0, num_classes)
    class_names: Sequence[str]  # index -> name
    name: str = ""
    source: Optional[str] = None  # where it was read from, for error messages
    # a split merged from several datasets (training domains): the name of each, and the index into
    # it of each class's dataset (int [num_classes]); empty and None for one dataset
    domain_names: Sequence[str] = ()
    class_domain: Optional[np.ndarray] = None

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise OmniJaxError(f"dataset {self.name or self.source}: images must be uint8 [N, H, W, C], "
                               f"got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (self.images.shape[0],):
            raise OmniJaxError(f"dataset {self.name or self.source}: {self.labels.shape[0]} labels "
                               f"for {self.images.shape[0]} images")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise OmniJaxError(f"dataset {self.name or self.source}: labels must be in [0, {len(self.class_names)})")
        if self.class_domain is not None and (
                np.shape(self.class_domain) != (len(self.class_names),)
                or (len(self.class_names) and not 0 <= np.min(self.class_domain) <= np.max(self.class_domain)
                    < len(self.domain_names))):
            raise OmniJaxError(f"dataset {self.name or self.source}: class_domain must give each of the "
                               f"{len(self.class_names)} classes a domain in [0, {len(self.domain_names)})")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)
