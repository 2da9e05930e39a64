"""Decoding and resizing image files with Pillow, shared by the folder-based loaders.

A loader hands over a list of ``(path, label)`` pairs; :func:`decode_images`
returns one uint8 ``[N, S, S, C]`` array. An image that cannot be decoded is
either skipped (the count goes to the log, with the first few file names) or
raises an :class:`OmniJaxError` naming the file, as ``on_error`` says.
"""
from __future__ import annotations

import concurrent.futures
import logging
import os
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from omni_jax.errors import OmniJaxError

log = logging.getLogger("omni_jax.data")

ON_ERROR = ("skip", "raise")
RESIZE = ("stretch", "center_crop")


def check_options(image_size: Optional[int], on_error: str, resize: str = "stretch") -> None:
    if on_error not in ON_ERROR:
        raise OmniJaxError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if resize not in RESIZE:
        raise OmniJaxError(f"resize must be one of {RESIZE}, got {resize!r}")
    if image_size is not None and (not isinstance(image_size, (int, np.integer)) or image_size < 1):
        raise OmniJaxError(f"image_size must be a positive integer or None, got {image_size!r}")


def to_array(img, image_size: Optional[int], channels: int, resize: str = "stretch") -> np.ndarray:
    """A PIL image as uint8 ``[S, S, C]``: converted to RGB or L, then resized.

    ``stretch`` resizes the whole image to ``S x S`` (the mini-ImageNet
    convention); ``center_crop`` takes the largest centred square first.
    """
    from PIL import Image

    img = img.convert("RGB" if channels == 3 else "L")
    if image_size is not None:
        if resize == "center_crop":
            w, h = img.size
            s = min(w, h)
            left, top = (w - s) // 2, (h - s) // 2
            img = img.crop((left, top, left + s, top + s))
        if img.size != (image_size, image_size):
            img = img.resize((image_size, image_size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr


def _decode_one(path: str, image_size: Optional[int], channels: int, resize: str):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.draft("RGB" if channels == 3 else "L",
                      (image_size, image_size) if image_size else None)  # fast JPEG downscale
            return to_array(img, image_size, channels, resize), None
    except FileNotFoundError:
        return None, "missing"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        return None, f"{type(e).__name__}: {e}"


def decode_images(paths: Sequence[str | os.PathLike], labels: Sequence[int], image_size: Optional[int],
                  *, channels: int = 3, on_error: str = "skip", resize: str = "stretch",
                  num_workers: Optional[int] = None, what: str = "dataset") -> Tuple[np.ndarray, np.ndarray]:
    """Decodes ``paths`` into uint8 ``[N, S, S, C]`` images and their int32 labels.

    Args:
      paths, labels: the image files and their labels, in order.
      image_size: the side ``S`` of the square output; ``None`` keeps the
        native size, which must then be the same for every image.
      channels: 3 (RGB) or 1 (grayscale).
      on_error: ``"skip"`` drops undecodable files and logs how many;
        ``"raise"`` stops at the first one with an error naming it. A missing
        file is always an error: it means the data directory is incomplete.
      num_workers: decoding threads (Pillow releases the GIL while decoding).
      what: the dataset's name, for messages.
    """
    check_options(image_size, on_error, resize)
    if channels not in (1, 3):
        raise OmniJaxError(f"channels must be 1 or 3, got {channels}")
    paths = [str(p) for p in paths]
    labels = np.asarray(labels, dtype=np.int32)
    if len(paths) != len(labels):
        raise OmniJaxError(f"{what}: {len(paths)} image paths for {len(labels)} labels")
    workers = num_workers or min(8, (os.cpu_count() or 1) * 2)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda p: _decode_one(p, image_size, channels, resize), paths))
    images, keep, bad = [], [], []
    for i, (arr, err) in enumerate(results):
        if err == "missing":
            raise OmniJaxError(f"{what}: image file {paths[i]} is missing; the data directory is incomplete "
                               f"(re-extract the dataset archive)")
        if err is not None:
            if on_error == "raise":
                raise OmniJaxError(f"{what}: cannot decode image {paths[i]} ({err}); "
                                   f"pass on_error='skip' to drop undecodable images")
            bad.append(paths[i])
            continue
        images.append(arr)
        keep.append(i)
    if bad:
        shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        log.warning("%s: skipped %d undecodable image(s) of %d: %s", what, len(bad), len(paths), shown)
    if not images:
        raise OmniJaxError(f"{what}: none of the {len(paths)} images could be decoded")
    shapes = {a.shape for a in images}
    if len(shapes) > 1:
        raise OmniJaxError(f"{what}: images have different sizes {sorted(shapes)[:3]}; pass image_size "
                           f"to resize them")
    return np.stack(images), labels[np.asarray(keep, dtype=np.int64)]


def require_file(path: Path, what: str, where: str) -> Path:
    """``path`` if it is a file, else an error naming it and where to get it."""
    if not path.is_file():
        raise OmniJaxError(f"{what}: {path} not found; {where}")
    return path


def require_dir(path: Path, what: str, where: str) -> Path:
    if not path.is_dir():
        raise OmniJaxError(f"{what}: data directory {path} not found; {where}")
    return path
