"""CUB-200-2011 in its release folder layout, and the mini-ImageNet -> CUB split.

``data_dir`` is the extracted ``CUB_200_2011`` folder (or its parent):
``images.txt`` (``<image_id> <path>``), ``image_class_labels.txt``
(``<image_id> <class_id>``), ``classes.txt`` (``<class_id> <name>``) and
``images/<path>``. Bounding boxes and parts are not used.

The class split is the one of Chen et al. (2019), *A Closer Look at Few-shot
Classification*, used by the paper: with classes in id order and ``i`` the
0-based index, class ``i`` is a training class when ``i % 4`` is 0 or 2
(100 classes), a validation class when ``i % 4 == 1`` (50) and a test class
when ``i % 4 == 3`` (50).

``mini2cub`` (cross-domain, §6.1): ``train`` is all 100 mini-ImageNet classes
(its train, val and test splits together); ``val`` and ``test`` are the 50
validation and 50 test classes of CUB above.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from omni_jax.data.dataset import ImageDataset
from omni_jax.data.formats.images import check_options, decode_images
from omni_jax.data.splits import canonical_split
from omni_jax import files as fileio
from omni_jax.errors import OmniJaxError

WHERE = ("CUB-200-2011 is not downloaded by omni-jax: get CUB_200_2011.tgz from the Caltech-UCSD Birds "
         "project page, extract it and pass the CUB_200_2011 folder as data_dir")
FILES = ("images.txt", "image_class_labels.txt", "classes.txt")


def split_of_class(index: int) -> str:
    """The split of the class with 0-based ``index`` (classes in id order)."""
    r = index % 4
    return "train" if r in (0, 2) else ("val" if r == 1 else "test")


def find_root(data_dir) -> Path:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise OmniJaxError(f"cub: data directory {data_dir} not found; {WHERE}")
    for root in (data_dir, data_dir / "CUB_200_2011"):
        if (root / "images.txt").is_file():
            return root
    raise OmniJaxError(f"cub: {data_dir / 'images.txt'} not found (nor under {data_dir / 'CUB_200_2011'}); {WHERE}")


def _read_pairs(path: Path) -> List[Tuple[str, str]]:
    if not path.is_file():
        raise OmniJaxError(f"cub: {path} not found; {WHERE}")
    out = []
    for line_no, line in enumerate(fileio.read_text(path, hint=WHERE).splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise OmniJaxError(f"cub: {path} line {line_no}: expected '<id> <value>', got {line!r}")
        out.append((parts[0], parts[1]))
    return out


def read_index(root: Path) -> Tuple[List[str], Dict[str, str], Dict[str, int]]:
    """(class names in id order, image id -> path, image id -> 0-based class index)."""
    classes = _read_pairs(root / "classes.txt")
    try:
        ids = [int(i) for i, _ in classes]
    except ValueError:
        raise OmniJaxError(f"cub: {root / 'classes.txt'}: class ids must be integers") from None
    order = np.argsort(ids, kind="stable")
    class_ids = [ids[i] for i in order]
    class_names = [classes[i][1] for i in order]
    position = {cid: k for k, cid in enumerate(class_ids)}
    images = dict(_read_pairs(root / "images.txt"))
    labels = {}
    for image_id, cid in _read_pairs(root / "image_class_labels.txt"):
        try:
            labels[image_id] = position[int(cid)]
        except (KeyError, ValueError):
            raise OmniJaxError(f"cub: {root / 'image_class_labels.txt'}: image {image_id} has class {cid!r}, "
                               f"which {root / 'classes.txt'} does not list") from None
    missing = [i for i in images if i not in labels]
    if missing:
        raise OmniJaxError(f"cub: {len(missing)} image(s) of images.txt have no line in image_class_labels.txt "
                           f"(first: id {missing[0]})")
    return class_names, images, labels


def load_cub(data_dir, split: str, image_size: Optional[int] = 84, *, on_error: str = "skip",
             resize: str = "stretch", num_workers: Optional[int] = None, classes: str = "paper",
             **unused) -> ImageDataset:
    """One split of CUB-200-2011 (RGB).

    ``classes="paper"`` uses the 100/50/50 split of the module docstring;
    ``classes="all"`` returns every class whatever ``split`` is.
    """
    check_options(image_size, on_error, resize)
    split = canonical_split(split, "cub")
    if classes not in ("paper", "all"):
        raise OmniJaxError(f"cub: classes must be 'paper' or 'all', got {classes!r}")
    root = find_root(data_dir)
    class_names, images, labels = read_index(root)
    chosen = [k for k in range(len(class_names)) if classes == "all" or split_of_class(k) == split]
    if not chosen:
        raise OmniJaxError(f"cub: {root / 'classes.txt'} lists {len(class_names)} classes, none in split {split}")
    remap = {k: j for j, k in enumerate(chosen)}
    ids = sorted((i for i in images if labels[i] in remap), key=lambda i: (labels[i], images[i]))
    paths = [root / "images" / images[i] for i in ids]
    y = [remap[labels[i]] for i in ids]
    what = f"cub/{split}"
    if not (root / "images").is_dir():
        raise OmniJaxError(f"cub: {root / 'images'} not found; {WHERE}")
    x, y = decode_images(paths, y, image_size, channels=3, on_error=on_error, resize=resize,
                         num_workers=num_workers, what=what)
    return ImageDataset(x, y, [class_names[k] for k in chosen], name=what, source=str(root))


def load_mini2cub(data_dir, split: str, image_size: Optional[int] = 84, *, miniimagenet_dir=None, cub_dir=None,
                  on_error: str = "skip", resize: str = "stretch", num_workers: Optional[int] = None,
                  **unused) -> ImageDataset:
    """mini-ImageNet -> CUB: ``train`` = all of mini-ImageNet, ``val``/``test`` = CUB's 50/50 classes.

    ``miniimagenet_dir`` and ``cub_dir`` default to ``data_dir/miniimagenet``
    and ``data_dir/CUB_200_2011`` (or ``data_dir/cub``).
    """
    from omni_jax.data.formats.miniimagenet import load_miniimagenet

    split = canonical_split(split, "mini2cub")
    data_dir = Path(data_dir)
    kw = dict(on_error=on_error, resize=resize, num_workers=num_workers)
    if split == "train":
        mini = Path(miniimagenet_dir) if miniimagenet_dir else data_dir / "miniimagenet"
        if not mini.is_dir():
            raise OmniJaxError(f"mini2cub: mini-ImageNet folder {mini} not found (set miniimagenet_dir or put it "
                               f"at data_dir/miniimagenet)")
        parts = [load_miniimagenet(mini, s, image_size, **kw) for s in ("train", "val", "test")]
        names, offset, ys = [], 0, []
        for p in parts:
            names += list(p.class_names)
            ys.append(p.labels + offset)
            offset += p.num_classes
        return ImageDataset(np.concatenate([p.images for p in parts]), np.concatenate(ys).astype(np.int32),
                            names, name="mini2cub/train", source=str(mini))
    if cub_dir:
        cub = Path(cub_dir)
    else:
        cub = next((p for p in (data_dir / "CUB_200_2011", data_dir / "cub") if p.is_dir()),
                   data_dir / "CUB_200_2011")
    ds = load_cub(cub, split, image_size, **kw)
    return ImageDataset(ds.images, ds.labels, ds.class_names, name=f"mini2cub/{split}", source=ds.source)
