"""Loaders of the on-disk dataset formats, behind one entry point.

    from omni_jax.data.formats import load_dataset
    train = load_dataset("miniimagenet", "/data/miniImagenet", "train", image_size=84)

Names (see :data:`NAMES`): ``miniimagenet``, ``cub``, ``mini2cub``,
``crossdomain_cub``, ``crossdomain_cars``, ``crossdomain_places``,
``crossdomain_plantae``, ``tfds:<builder>`` (e.g. ``tfds:cars196``), and
``glyphs`` or ``glyphs:<protocol>`` (``cross_task``, ``cross_domain``,
``loo_<group>``; see :mod:`omni_jax.data.formats.glyphs`, built by
:mod:`omni_jax.glyphs`). Nothing is ever downloaded: a missing file is an
:class:`~omni_jax.errors.OmniJaxError` naming it and where to get it.

Each loader returns an :class:`~omni_jax.data.dataset.ImageDataset` with
uint8 images ``[N, S, S, C]``. Common keyword arguments: ``on_error``
(``"skip"``: undecodable images are dropped and counted in the log;
``"raise"``: the first one is an error naming the file), ``resize``
(``"stretch"`` or ``"center_crop"``) and ``num_workers`` (decoding threads).
"""
from __future__ import annotations

import functools
from typing import Callable, Dict, Optional

from omni_jax.data.dataset import ImageDataset
from omni_jax.errors import OmniJaxError


def _glyphs(protocol: str):
    def load(data_dir, split, image_size=None, **kw):
        from omni_jax.data.formats.glyphs import load_glyphs
        return load_glyphs(data_dir, split, image_size, protocol=protocol, **kw)
    return load


def _registry() -> Dict[str, Callable[..., ImageDataset]]:
    from omni_jax.data.formats.crossdomain import DOMAINS, load_crossdomain
    from omni_jax.data.formats.cub import load_cub, load_mini2cub
    from omni_jax.data.formats.miniimagenet import load_miniimagenet

    out = {"miniimagenet": load_miniimagenet, "cub": load_cub, "mini2cub": load_mini2cub,
           "glyphs": _glyphs("cross_task")}
    for d in DOMAINS:
        out[f"crossdomain_{d}"] = functools.partial(load_crossdomain, domain=d)
    return out


NAMES = ("miniimagenet", "cub", "mini2cub", "crossdomain_cub", "crossdomain_cars", "crossdomain_places",
         "crossdomain_plantae", "tfds:caltech_birds2011", "tfds:cars196", "tfds:omniglot",
         "glyphs", "glyphs:cross_task", "glyphs:cross_domain", "glyphs:loo_<group>")

# Default image size per name: photos at 84 (mini-ImageNet), glyphs at their stored 28.
DEFAULT_IMAGE_SIZE = {"miniimagenet": 84, "cub": 84, "mini2cub": 84, "crossdomain": 84, "tfds": 84, "glyphs": None}


def is_known(name: str) -> bool:
    """Whether ``name`` is a dataset :func:`load_dataset` knows (without reading anything)."""
    return name.startswith(("tfds:", "glyphs:")) or name in _registry()


def default_image_size(name: str) -> Optional[int]:
    key = name.split(":")[0].split("_")[0] if not name.startswith("tfds:") else "tfds"
    return DEFAULT_IMAGE_SIZE.get(key, 84)


def load_dataset(name: str, data_dir, split: str, image_size: Optional[int] = -1, **kwargs) -> ImageDataset:
    """One split of the dataset ``name`` read from ``data_dir``.

    Args:
      name: a registered name (see the module docstring).
      data_dir: the dataset's folder.
      split: ``train``, ``val`` or ``test`` (or ``base``/``novel``/``validation``).
      image_size: the side of the square images; ``None`` keeps the native
        size; the default -1 means the name's usual size (84 for photos,
        28 for glyphs).
      **kwargs: passed to the loader (``on_error``, ``resize``, ...).
    """
    if image_size == -1:
        image_size = default_image_size(name)
    if data_dir is None:
        raise OmniJaxError(f"{name}: no data directory given (--data-dir); omni-jax never downloads datasets")
    if name.startswith("tfds:"):
        from omni_jax.data.formats.tfds_builders import load_tfds
        return load_tfds(name[len("tfds:"):], data_dir, split, image_size, **kwargs)
    if name.startswith("glyphs:"):
        return _glyphs(name[len("glyphs:"):])(data_dir, split, image_size, **kwargs)
    registry = _registry()
    if name not in registry:
        raise OmniJaxError(f"unknown dataset {name!r}; expected one of {', '.join(NAMES)}")
    return registry[name](data_dir, split, image_size, **kwargs)
