"""TensorFlow Datasets builders (caltech_birds2011, cars196, omniglot) read without TensorFlow.

TFDS can read a prepared dataset with numpy only, through its random-access
data source, when the dataset was prepared in the ``array_record`` file
format. This loader never prepares or downloads anything: it looks for
``data_dir/<name>[/<config>]/<version>/dataset_info.json`` and the
``*.array_record-*`` shards next to it, opens that folder with
``tfds.builder_from_directory`` (which has no download path) and raises an
error naming the missing file otherwise. Prepare the data once, on a machine
with TensorFlow, with::

    tfds build <name> --data_dir DATA_DIR --file_format array_record [--manual_dir MANUAL_DIR]

(``--manual_dir`` holds archives you fetched yourself, for builders that need
them). ``manual_dir`` is accepted here for the same purpose with the explicit
opt-in ``prepare=True``, which needs TensorFlow and calls the builder's
``download_and_prepare`` with ``manual_dir`` as both the manual and the
download folder: archives already there are used, but TFDS fetches whatever
is missing, so it is never a default and the command line does not expose it.

TFDS splits are image splits over the same classes; few-shot learning needs
class splits. So all TFDS splits are pooled and the classes are split:
caltech_birds2011 and cars196 with the 100/50/50-style rule of
:mod:`omni_jax.data.formats.cub` (class index ``i``: train if ``i % 4`` is 0
or 2, val if 1, test if 3); omniglot with its background alphabets (the TFDS
``train`` split) for training and its evaluation alphabets' characters
alternately to val and test. ``tfds_split=...`` reads one TFDS split as it is,
with all its classes.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from omni_jax.data.dataset import ImageDataset
from omni_jax.data.formats.cub import split_of_class
from omni_jax.data.formats.images import check_options, to_array
from omni_jax.data.splits import canonical_split
from omni_jax import files as fileio
from omni_jax.errors import OmniJaxError

log = logging.getLogger("omni_jax.data")

# name -> (image key, label key, channels)
BUILDERS: Dict[str, tuple] = {
    "caltech_birds2011": ("image", "label", 3),
    "cars196": ("image", "label", 3),
    "omniglot": ("image", "label", 1),
}


def _how_to_prepare(name: str, data_dir) -> str:
    return (f"prepare it once on a machine with TensorFlow: tfds build {name} --data_dir {data_dir} "
            f"--file_format array_record (omni-jax never downloads datasets)")


def find_prepared(name: str, data_dir) -> Path:
    """The folder of the newest prepared version of ``name`` under ``data_dir``, checked for array_record shards."""
    data_dir = Path(data_dir)
    what = f"tfds:{name}"
    if not data_dir.is_dir():
        raise OmniJaxError(f"{what}: data directory {data_dir} not found; {_how_to_prepare(name, data_dir)}")
    base, config = (name.split("/", 1) + [None])[:2]
    root = data_dir / base / config if config else data_dir / base
    infos = sorted(root.glob("*/dataset_info.json"), key=lambda p: _version_key(p.parent.name))
    if not infos:
        raise OmniJaxError(f"{what}: {root}/<version>/dataset_info.json not found; {_how_to_prepare(name, data_dir)}")
    folder = infos[-1].parent
    shards = sorted(folder.glob("*.array_record-*"))
    if not shards:
        other = sorted(p.name for p in folder.iterdir() if "-of-" in p.name)[:1]
        found = f" (found {other[0]}, another file format)" if other else ""
        raise OmniJaxError(f"{what}: {folder} has no *.array_record-* shards{found}; reading without TensorFlow "
                           f"needs the array_record format: {_how_to_prepare(name, data_dir)}")
    return folder


def _version_key(v: str):
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return (-1,)


def _records(folder: Path, split: str):
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(str(folder), file_format="array_record")
    return builder, builder.as_data_source(split=split)


def load_tfds(name: str, data_dir, split: str, image_size: Optional[int] = None, *, manual_dir=None,
              prepare: bool = False, tfds_split: Optional[str] = None, on_error: str = "skip",
              resize: str = "stretch", channels: Optional[int] = None, **unused) -> ImageDataset:
    """One class split of a prepared TFDS image-classification dataset."""
    check_options(image_size, on_error, resize)
    what = f"tfds:{name}"
    base = name.split("/")[0]
    image_key, label_key, default_channels = BUILDERS.get(base, ("image", "label", 3))
    channels = channels or default_channels
    if prepare:
        _prepare(name, data_dir, manual_dir)
    folder = find_prepared(name, data_dir)
    info = fileio.read_json(folder / "dataset_info.json", expect=dict,
                           hint="prepare the dataset again (tfds build, see the README)")
    tfds_splits = [s["name"] for s in info.get("splits", [])]
    if not tfds_splits:
        raise OmniJaxError(f"{what}: {folder / 'dataset_info.json'} lists no splits")
    if tfds_split is not None:
        if tfds_split not in tfds_splits:
            raise OmniJaxError(f"{what}: tfds_split {tfds_split!r} is not one of {tfds_splits}")
        read, keep = [tfds_split], None
    else:
        split = canonical_split(split, what)
        read, keep = tfds_splits, split
    images: List[np.ndarray] = []
    labels: List[int] = []
    origin: List[str] = []
    class_names = None
    bad = 0
    for s in read:
        builder, source = _records(folder, s)
        if class_names is None:
            feature = builder.info.features[label_key]
            class_names = list(getattr(feature, "names", None) or [str(i) for i in range(feature.num_classes)])
        for i in range(len(source)):
            try:
                ex = source[i]
            except Exception as e:  # a corrupt record: TFDS raises whatever its decoder raises
                if on_error == "raise":
                    raise OmniJaxError(f"{what}: record {i} of split {s} in {folder} cannot be decoded ({e})") from None
                bad += 1
                continue
            images.append(_image(ex[image_key], image_size, channels, resize))
            labels.append(int(ex[label_key]))
            origin.append(s)
    if bad:
        log.warning("%s: skipped %d undecodable record(s)", what, bad)
    if not images:
        raise OmniJaxError(f"{what}: {folder} holds no readable examples")
    shapes = {a.shape for a in images}
    if len(shapes) > 1:
        raise OmniJaxError(f"{what}: images have different sizes; pass image_size to resize them")
    labels = np.asarray(labels, dtype=np.int64)
    x = np.stack(images)
    if keep is not None:
        chosen = _class_split(base, labels, np.asarray(origin), keep, len(class_names))
    else:
        chosen = np.unique(labels)
    remap = np.full(len(class_names), -1, dtype=np.int64)
    remap[chosen] = np.arange(len(chosen))
    mask = remap[labels] >= 0
    split_name = tfds_split or keep
    return ImageDataset(x[mask], remap[labels[mask]].astype(np.int32), [class_names[c] for c in chosen],
                        name=f"{what}/{split_name}", source=str(folder))


def _class_split(base: str, labels: np.ndarray, origin: np.ndarray, split: str, num_classes: int) -> np.ndarray:
    if base == "omniglot":
        background = np.unique(labels[origin == "train"])
        if split == "train":
            return background
        evaluation = np.setdiff1d(np.unique(labels), background)
        return evaluation[0::2] if split == "val" else evaluation[1::2]
    return np.asarray([c for c in range(num_classes) if split_of_class(c) == split], dtype=np.int64)


def _image(arr, image_size, channels, resize) -> np.ndarray:
    from PIL import Image

    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        arr = arr.astype(np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[:, :, 0]
    return to_array(Image.fromarray(arr), image_size, channels, resize)


def _prepare(name: str, data_dir, manual_dir) -> None:
    """Prepares ``name`` from the archives in ``manual_dir`` (needs TensorFlow; an explicit opt-in)."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        raise OmniJaxError(f"tfds:{name}: prepare=True needs TensorFlow to write the dataset; "
                           f"{_how_to_prepare(name, data_dir)}")
    if manual_dir is None or not Path(manual_dir).is_dir():
        raise OmniJaxError(f"tfds:{name}: prepare=True needs manual_dir, the folder with the archives "
                           f"(got {manual_dir})")
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=str(data_dir), file_format="array_record")
    config = tfds.download.DownloadConfig(manual_dir=str(manual_dir), download_mode=tfds.GenerateMode.REUSE_DATASET_IF_EXISTS)
    try:
        builder.download_and_prepare(download_config=config, download_dir=str(manual_dir))
    except Exception as e:
        raise OmniJaxError(f"tfds:{name}: preparing from {manual_dir} failed ({type(e).__name__}: {e})") from None
