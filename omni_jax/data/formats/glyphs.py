"""The glyph benchmark's on-disk format: reading ``manifest.json`` and the checksummed ``.npz``,
and one split of it as an :class:`~omni_jax.data.dataset.ImageDataset`.

    load_dataset("glyphs", DIR, "train")                       # cross-task split
    load_dataset("glyphs:cross_domain", DIR, "test/Arabic")    # one script of a split
    load_glyphs(DIR, "test", protocol="loo_indic")

``DIR/glyphs-v1.npz`` holds ``images`` uint8 ``[M, 28, 28]`` (ink 255 on 0),
``labels`` int32 ``[M]`` and ``faces`` int32 ``[M]`` (indices into the
manifest's faces). ``DIR/manifest.json`` holds the format name and version,
the archive's sha256, each class's characters, script, shape group and faces,
each face's file and family, the splits and the build's settings and
statistics. Reading checks the format, the version and, unless told not to,
the checksum.

The benchmark is built by :mod:`omni_jax.glyphs` (``omni-jax data glyphs``,
whose :mod:`omni_jax.glyphs.archive` writes these files with the constants
defined here); its protocols and splits are described in
:mod:`omni_jax.glyphs.splits`. This module is the reading side only and
imports nothing of the builder. A split name may end in ``/<Script>`` (or
``/Arabic+Hebrew+Khmer``) to keep those scripts' classes; ``all`` is every
class of the benchmark, e.g. ``all/Hebrew`` to test a Latin/Greek/Cyrillic
model on every Hebrew letter.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np

from omni_jax import files
from omni_jax.data.dataset import ImageDataset
from omni_jax.data.formats.images import to_array
from omni_jax.errors import OmniJaxError

FORMAT = "omni-jax-glyphs"
VERSION = 1
ARCHIVE = f"glyphs-v{VERSION}.npz"
MANIFEST = "manifest.json"
WHERE = "build it with `omni-jax data glyphs --out DIR` (see docs/glyphs.md for the font packages)"


# ---------------------------------------------------------------------------------------------- the files

def sha256_file(path) -> str:
    """The hex sha256 of the file at ``path``."""
    return files.digest(path)


def read_manifest(data_dir) -> dict:
    """The manifest of ``data_dir``, its format, version and required fields checked."""
    data_dir = Path(data_dir)
    path = data_dir / MANIFEST
    if not data_dir.is_dir():
        raise OmniJaxError(f"glyphs: data directory {data_dir} not found; {WHERE}")
    if not path.is_file():
        raise OmniJaxError(f"glyphs: {path} not found; {WHERE}")
    manifest = files.read_json(path, hint=WHERE)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise OmniJaxError(f"glyphs: {path} is not a glyph benchmark manifest (format must be {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise OmniJaxError(f"glyphs: {path} has version {manifest.get('version')}, this omni-jax reads version "
                           f"{VERSION}; rebuild it with `omni-jax data glyphs --out {data_dir}`")
    for key in ("sha256", "archive", "classes", "splits"):
        if key not in manifest:
            raise OmniJaxError(f"glyphs: {path} lacks the field {key!r}; rebuild it")
    return manifest


def verify_archive(data_dir, manifest: dict) -> Path:
    """The archive ``manifest`` names in ``data_dir``, after checking that it exists and has the manifest's sha256."""
    data_dir = Path(data_dir)
    archive = data_dir / manifest["archive"]
    if not archive.is_file():
        raise OmniJaxError(f"glyphs: {archive} not found (named by {data_dir / MANIFEST}); {WHERE}")
    digest = sha256_file(archive)
    if digest != manifest["sha256"]:
        raise OmniJaxError(f"glyphs: {archive} has sha256 {digest[:12]}..., the manifest says "
                           f"{manifest['sha256'][:12]}...: the file is damaged or from another build; "
                           f"rebuild with `omni-jax data glyphs --out {data_dir}`")
    return archive


def read_benchmark(data_dir, verify: bool = True):
    """(manifest, images, labels, faces) of a built benchmark, the checksum checked when ``verify``."""
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    archive = data_dir / manifest["archive"]
    if verify:
        verify_archive(data_dir, manifest)
    elif not archive.is_file():
        raise OmniJaxError(f"glyphs: {archive} not found (named by {data_dir / MANIFEST}); {WHERE}")
    with files.guarded(archive, "read", f"rebuild it with `omni-jax data glyphs --out {data_dir}`"):
        with np.load(archive, allow_pickle=False) as z:
            images, labels, faces = z["images"], z["labels"], z["faces"]
    if images.ndim != 3 or images.dtype != np.uint8 or len(labels) != len(images) or len(faces) != len(images):
        raise OmniJaxError(f"glyphs: {archive} holds arrays of unexpected shapes; rebuild it")
    return manifest, images, labels, faces


# ---------------------------------------------------------------------------------------------- one split

def protocols(manifest: dict) -> List[str]:
    """The protocols a built benchmark has, sorted."""
    return sorted(manifest["splits"])


def load_glyphs(data_dir, split: str, image_size: Optional[int] = None, *, protocol: str = "cross_task",
                verify: bool = True, max_per_class: Optional[int] = None, **unused) -> ImageDataset:
    """One split of the glyph benchmark: uint8 ``[N, S, S, 1]`` images, ink high.

    ``split`` is ``train``, ``val``, ``test`` (``cross_domain`` also has
    ``test_in``) or ``all`` (every class), optionally followed by
    ``/<Script>`` or ``/<Script>+<Script>...``; ``image_size`` None keeps the
    stored 28. ``max_per_class`` keeps at most that many faces of each class
    (a fixed random choice: Latin classes have up to a thousand faces).
    """
    manifest, images, labels, _ = read_benchmark(data_dir, verify)
    splits = manifest["splits"]
    if protocol not in splits:
        raise OmniJaxError(f"glyphs: unknown protocol {protocol!r}; {data_dir} has {', '.join(sorted(splits))}")
    part, _, script = str(split).partition("/")
    aliases = {"base": "train", "background": "train", "validation": "val", "novel": "test", "evaluation": "test"}
    part = aliases.get(part, part)
    if part == "all":
        classes = sorted({c for ids in splits[protocol].values() for c in ids})
    elif part in splits[protocol]:
        classes = list(splits[protocol][part])
    else:
        raise OmniJaxError(f"glyphs: protocol {protocol} has no split {part!r}; expected one of "
                           f"{', '.join(splits[protocol])} or all")
    if script:
        scripts = {c["script"] for c in manifest["classes"]}
        wanted = set()
        for name in script.replace(",", "+").split("+"):
            match = next((s for s in scripts if s.lower() == name.strip().lower()), None)
            if match is None:
                raise OmniJaxError(f"glyphs: unknown script {name.strip()!r}; the benchmark has "
                                   f"{', '.join(sorted(scripts))}")
            wanted.add(match)
        classes = [c for c in classes if manifest["classes"][c]["script"] in wanted]
        if not classes:
            raise OmniJaxError(f"glyphs: split {protocol}/{part} has no {'+'.join(sorted(wanted))} classes")
    remap = np.full(len(manifest["classes"]), -1, np.int64)
    remap[classes] = np.arange(len(classes))
    mask = remap[labels] >= 0
    if max_per_class is not None:
        if max_per_class < 1:
            raise OmniJaxError(f"glyphs: max_per_class must be >= 1, got {max_per_class}")
        rank = np.empty(len(labels), np.int64)
        order = np.lexsort((np.random.default_rng(0).permutation(len(labels)), labels))
        starts = np.searchsorted(labels[order], labels[order])
        rank[order] = np.arange(len(labels)) - starts
        mask &= rank < max_per_class
    x = images[mask]
    if image_size is not None and image_size != x.shape[1]:
        from PIL import Image
        x = np.stack([to_array(Image.fromarray(im), image_size, 1)[:, :, 0] for im in x])
    names = [f"{manifest['classes'][c]['script']}:{manifest['classes'][c]['chars'][0]}" for c in classes]
    return ImageDataset(np.ascontiguousarray(x[..., None]), remap[labels[mask]].astype(np.int32), names,
                        name=f"glyphs:{protocol}/{split}", source=str(Path(data_dir) / MANIFEST))
