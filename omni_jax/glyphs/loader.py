"""Reading one split of a built glyph benchmark back as an :class:`~omni_jax.data.dataset.ImageDataset`.

    load_dataset("glyphs", DIR, "train")                       # cross-task split
    load_dataset("glyphs:cross_domain", DIR, "test/Arabic")    # one script of a split
    load_glyphs(DIR, "test", protocol="loo_indic")

The protocols and their splits are described in :mod:`omni_jax.glyphs.splits`;
the files in :mod:`omni_jax.glyphs.archive`. A split name may end in
``/<Script>`` (or ``/Arabic+Hebrew+Khmer``) to keep those scripts' classes;
``all`` is every class of the benchmark, e.g. ``all/Hebrew`` to test a
Latin/Greek/Cyrillic model on every Hebrew letter.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np

from omni_jax.data.dataset import ImageDataset
from omni_jax.errors import OmniJaxError
from omni_jax.glyphs.archive import MANIFEST, read_benchmark


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
    from omni_jax.data.formats.images import to_array

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
