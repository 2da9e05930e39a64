"""The JSON split files of the cross-domain few-shot benchmark (CUB, Cars, Places, Plantae).

Each domain has ``base.json``, ``val.json`` and ``novel.json`` (our ``train``,
``val`` and ``test``), each a dict with

- ``label_names``: class names, indexed by label;
- ``image_names``: image paths;
- ``image_labels``: one integer label per image.

``data_dir`` is either the folder holding the three files or its parent with
one sub-folder per domain (``cub``, ``cars``, ``places``, ``plantae``; any
case). Image paths in these files are usually absolute paths of the machine
that wrote them: a path that does not exist is looked up under ``image_root``
(default: the folder of the JSON file, then ``data_dir``), dropping leading
components until it is found.
"""
from __future__ import annotations

import json
from pathlib import Path, PurePath
from typing import List, Optional, Sequence

import numpy as np

from omni_jax.data.dataset import ImageDataset
from omni_jax.data.formats.images import check_options, decode_images
from omni_jax.data.splits import canonical_split
from omni_jax import files as fileio
from omni_jax.errors import OmniJaxError

DOMAINS = ("cub", "cars", "places", "plantae")
FILE_OF_SPLIT = {"train": "base.json", "val": "val.json", "test": "novel.json"}
WHERE = ("the cross-domain split files are not downloaded by omni-jax: write base.json/val.json/novel.json "
         "with the benchmark's filelist scripts next to the domain's images, and pass that folder as data_dir")


def find_json(data_dir: Path, domain: str, split: str) -> Path:
    name = FILE_OF_SPLIT[split]
    with fileio.guarded(data_dir, "list", WHERE):
        candidates = [data_dir / name] + [d / name for d in sorted(data_dir.iterdir()) if d.is_dir()
                                          and d.name.lower() == domain] if data_dir.is_dir() else [data_dir / name]
    for c in candidates:
        if c.is_file():
            return c
    raise OmniJaxError(f"crossdomain_{domain}: {candidates[0]} not found (nor {data_dir / domain / name}); {WHERE}")


class _Resolver:
    """Finds image files named by absolute paths written on another machine."""

    def __init__(self, roots: Sequence[Path]):
        self.roots = [r for r in roots if r is not None]
        self.strip = None  # leading components to drop, learned from the first hit

    def candidates(self, name: str):
        p = PurePath(name)
        yield Path(p)
        parts = p.parts[1:] if p.is_absolute() else p.parts
        order = range(len(parts))
        if self.strip is not None:
            order = [self.strip] + [k for k in order if k != self.strip]
        for k in order:
            for root in self.roots:
                yield root.joinpath(*parts[k:]), k

    def __call__(self, name: str) -> Optional[Path]:
        for c in self.candidates(name):
            path, k = (c, None) if isinstance(c, Path) else c
            if path.is_file():
                if k is not None:
                    self.strip = k
                return path
        return None


def load_crossdomain(data_dir, split: str, image_size: Optional[int] = 84, *, domain: str,
                     image_root=None, on_error: str = "skip", resize: str = "stretch",
                     num_workers: Optional[int] = None, **unused) -> ImageDataset:
    """One split of one domain of the cross-domain benchmark (RGB)."""
    check_options(image_size, on_error, resize)
    domain = domain.lower()
    what = f"crossdomain_{domain}"
    if domain not in DOMAINS:
        raise OmniJaxError(f"crossdomain: unknown domain {domain!r}; expected one of {', '.join(DOMAINS)}")
    split = canonical_split(split, what)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise OmniJaxError(f"{what}: data directory {data_dir} not found; {WHERE}")
    path = find_json(data_dir, domain, split)
    meta = fileio.read_json(path, hint=WHERE)
    for key in ("label_names", "image_names", "image_labels"):
        if not isinstance(meta, dict) or not isinstance(meta.get(key), list):
            raise OmniJaxError(f"{what}: {path} must be a JSON object with a list field {key!r}")
    names, files, raw = meta["label_names"], meta["image_names"], meta["image_labels"]
    if len(files) != len(raw):
        raise OmniJaxError(f"{what}: {path} has {len(files)} image_names but {len(raw)} image_labels")
    if not files:
        raise OmniJaxError(f"{what}: {path} lists no images")
    try:
        raw = np.asarray(raw, dtype=np.int64)
    except (TypeError, ValueError):
        raise OmniJaxError(f"{what}: {path} field image_labels must hold integers") from None
    if raw.min() < 0 or raw.max() >= len(names):
        raise OmniJaxError(f"{what}: {path} has image_labels outside [0, {len(names)}) (len(label_names))")
    used = np.unique(raw)  # the labels are global: keep only this split's classes, in label order
    remap = np.full(len(names), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    roots: List[Path] = [Path(image_root)] if image_root else []
    roots += [path.parent, data_dir]
    resolve = _Resolver(roots)
    paths = []
    for name in files:
        found = resolve(str(name))
        if found is None:
            raise OmniJaxError(f"{what}: image {name} listed in {path} not found, nor under "
                               f"{', '.join(map(str, roots))}; set image_root to the folder the paths are relative to")
        paths.append(found)
    x, y = decode_images(paths, remap[raw], image_size, channels=3, on_error=on_error, resize=resize,
                         num_workers=num_workers, what=f"{what}/{split}")
    return ImageDataset(x, y, [str(names[k]) for k in used], name=f"{what}/{split}", source=str(path))
