"""mini-ImageNet in its three common on-disk layouts.

``data_dir`` holds one of:

- ``csv``: the Ravi & Larochelle split files ``train.csv``, ``val.csv`` and
  ``test.csv`` (header ``filename,label``) and an ``images/`` folder with the
  files they name;
- ``pickle``: the caches ``mini-imagenet-cache-{train,val,test}.pkl``, each a
  dict with ``image_data`` (uint8 ``[N, 84, 84, 3]``) and ``class_dict``
  (class name -> list of indices into ``image_data``);
- ``folders``: ``{train,val,test}/<class>/*.jpg``.

The default ``layout="auto"`` picks the first one found, in that order.
"""
from __future__ import annotations

import csv
import io
import pickle
from pathlib import Path
from typing import Optional

import numpy as np

from omni_jax.data.dataset import ImageDataset
from omni_jax.data.formats.images import check_options, decode_images, require_dir, to_array
from omni_jax.data.splits import canonical_split
from omni_jax import files as fileio
from omni_jax.errors import OmniJaxError


WHERE = ("mini-ImageNet is not downloaded by omni-jax: get the Ravi & Larochelle split files "
         "(train.csv, val.csv, test.csv) and the 84x84 images/ folder, or the pickled caches "
         "mini-imagenet-cache-{train,val,test}.pkl, or a train/val/test class-folder tree, and pass "
         "that folder as data_dir")
LAYOUTS = ("auto", "csv", "pickle", "folders")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def detect_layout(data_dir: Path, split: str) -> str:
    if (data_dir / f"{split}.csv").is_file():
        return "csv"
    if (data_dir / f"mini-imagenet-cache-{split}.pkl").is_file():
        return "pickle"
    if (data_dir / split).is_dir():
        return "folders"
    raise OmniJaxError(f"miniimagenet: {data_dir} has none of {split}.csv, mini-imagenet-cache-{split}.pkl "
                       f"or a {split}/ folder; {WHERE}")


def load_miniimagenet(data_dir, split: str, image_size: Optional[int] = 84, *, layout: str = "auto",
                      on_error: str = "skip", resize: str = "stretch", num_workers: Optional[int] = None,
                      **unused) -> ImageDataset:
    """One split of mini-ImageNet as an :class:`ImageDataset` (RGB)."""
    check_options(image_size, on_error, resize)
    split = canonical_split(split, "miniimagenet")
    data_dir = require_dir(Path(data_dir), "miniimagenet", WHERE)
    if layout not in LAYOUTS:
        raise OmniJaxError(f"miniimagenet: layout must be one of {LAYOUTS}, got {layout!r}")
    if layout == "auto":
        layout = detect_layout(data_dir, split)
    kw = dict(image_size=image_size, on_error=on_error, resize=resize, num_workers=num_workers)
    if layout == "csv":
        return _load_csv(data_dir, split, **kw)
    if layout == "pickle":
        return _load_pickle(data_dir, split, image_size, resize)
    return load_class_folders(data_dir / split, f"miniimagenet/{split}", **kw)


def _load_csv(data_dir: Path, split: str, **kw) -> ImageDataset:
    path = data_dir / f"{split}.csv"
    if not path.is_file():
        raise OmniJaxError(f"miniimagenet: {path} not found; {WHERE}")
    images_dir = data_dir / "images"
    if not images_dir.is_dir():
        raise OmniJaxError(f"miniimagenet: {images_dir} not found next to {path.name}; {WHERE}")
    text = fileio.read_text(path, hint=WHERE)
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as e:
        raise OmniJaxError(f"miniimagenet: {path} is not a CSV file ({e}); {WHERE}") from None
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["filename", "label"]:
        raise OmniJaxError(f"miniimagenet: {path} must start with the header 'filename,label', "
                           f"got {','.join(rows[0]) if rows else 'an empty file'}")
    class_names, index, paths, labels = [], {}, [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) < 2 or not row[0] or not row[1]:
            raise OmniJaxError(f"miniimagenet: {path} line {line}: expected 'filename,label', got {','.join(row)!r}")
        name, label = row[0].strip(), row[1].strip()
        if label not in index:
            index[label] = len(class_names)
            class_names.append(label)
        paths.append(images_dir / name)
        labels.append(index[label])
    if not paths:
        raise OmniJaxError(f"miniimagenet: {path} lists no images")
    images, labels = decode_images(paths, labels, channels=3, what=f"miniimagenet/{split}", **kw)
    return ImageDataset(images, labels, class_names, name=f"miniimagenet/{split}", source=str(path))


def _load_pickle(data_dir: Path, split: str, image_size: Optional[int], resize: str) -> ImageDataset:
    path = data_dir / f"mini-imagenet-cache-{split}.pkl"
    if not path.is_file():
        raise OmniJaxError(f"miniimagenet: {path} not found; {WHERE}")
    raw = fileio.read_bytes(path, hint=WHERE)
    try:
        try:
            data = pickle.loads(raw)
        except UnicodeDecodeError:  # caches written by Python 2
            data = pickle.loads(raw, encoding="latin1")
    except Exception as e:  # noqa: BLE001 (a damaged pickle raises anything)
        raise OmniJaxError(f"miniimagenet: {path} is not a readable pickle ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or "image_data" not in data or "class_dict" not in data:
        keys = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise OmniJaxError(f"miniimagenet: {path} must hold a dict with 'image_data' and 'class_dict', got {keys}")
    images = np.asarray(data["image_data"])
    if images.ndim != 4 or images.shape[-1] != 3:
        raise OmniJaxError(f"miniimagenet: {path} field image_data must be [N, H, W, 3], got {images.shape}")
    if images.dtype != np.uint8:
        if images.min() < 0 or images.max() > 255:
            raise OmniJaxError(f"miniimagenet: {path} field image_data must hold 0..255 pixel values")
        images = images.astype(np.uint8)
    class_dict = data["class_dict"]
    if not isinstance(class_dict, dict) or not class_dict:
        raise OmniJaxError(f"miniimagenet: {path} field class_dict must be a non-empty dict class -> indices")
    class_names = sorted(class_dict)
    order, labels = [], []
    for c, name in enumerate(class_names):
        idx = np.asarray(class_dict[name], dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(images)):
            raise OmniJaxError(f"miniimagenet: {path} class_dict[{name!r}] has indices outside [0, {len(images)})")
        order.append(idx)
        labels.append(np.full(idx.size, c, dtype=np.int32))
    order = np.concatenate(order)
    images, labels = images[order], np.concatenate(labels)
    if image_size is not None and images.shape[1:3] != (image_size, image_size):
        from PIL import Image
        images = np.stack([to_array(Image.fromarray(im), image_size, 3, resize) for im in images])
    return ImageDataset(np.ascontiguousarray(images), labels, [str(c) for c in class_names],
                        name=f"miniimagenet/{split}", source=str(path))


def load_class_folders(root, what: str, image_size: Optional[int], *, channels: int = 3, on_error: str = "skip",
                       resize: str = "stretch", num_workers: Optional[int] = None) -> ImageDataset:
    """``root/<class>/<image>`` as an :class:`ImageDataset`; classes in sorted order."""
    root = Path(root)
    if not root.is_dir():
        raise OmniJaxError(f"{what}: folder {root} not found; {WHERE}")
    with fileio.guarded(root, "list", WHERE):
        class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise OmniJaxError(f"{what}: {root} has no class folders (expected {root}/<class>/<image>.jpg)")
    paths, labels = [], []
    for c, d in enumerate(class_dirs):
        with fileio.guarded(d, "list", WHERE):
            files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        paths += files
        labels += [c] * len(files)
    if not paths:
        raise OmniJaxError(f"{what}: the class folders under {root} hold no image files ({', '.join(IMAGE_EXTENSIONS)})")
    images, labels = decode_images(paths, labels, image_size, channels=channels, on_error=on_error,
                                   resize=resize, num_workers=num_workers, what=what)
    return ImageDataset(images, labels, [d.name for d in class_dirs], name=what, source=str(root))
