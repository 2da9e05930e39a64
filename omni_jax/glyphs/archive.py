"""Writing the glyph benchmark's files: a checksummed ``.npz`` archive and its ``manifest.json``.

``DIR/glyphs-v1.npz`` is written with fixed timestamps, so that the same
arrays give the same bytes; ``DIR/manifest.json`` last, atomically, with the
archive's sha256. The format itself (file names, format name and version,
the fields) and its reading side live with the other dataset formats, in
:mod:`omni_jax.data.formats.glyphs`.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Dict

import numpy as np

from omni_jax import files
from omni_jax.data.formats.glyphs import ARCHIVE, FORMAT, MANIFEST, VERSION
from omni_jax.errors import OmniJaxError


def check_writable(out_dir) -> None:
    """Fails early, with an :class:`OmniJaxError` naming ``out_dir``, when it cannot be created and written.

    Creates the missing folders, writes and removes a probe file, then
    removes the folders it created: the file system is left as it was.
    """
    out_dir = Path(out_dir)
    missing = [p for p in (out_dir, *out_dir.parents) if not p.exists()]   # innermost first
    probe = out_dir / f".omni-jax-write-probe.{os.getpid()}"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OmniJaxError(f"glyphs: cannot write the output folder {out_dir} "
                           f"({e.strerror or type(e).__name__}); choose another --out") from None
    finally:
        for p in missing:
            try:
                p.rmdir()
            except OSError:
                pass


def write_npz(path: Path, arrays: Dict[str, np.ndarray]) -> str:
    """Writes ``arrays`` as an .npz with fixed timestamps (same arrays, same bytes), atomically; returns its sha256."""
    path = Path(path)
    with files.atomic_path(path) as tmp:
        with files.guarded(path, "write"):
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
                for name in sorted(arrays):
                    buf = io.BytesIO()
                    np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
                    info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    zf.writestr(info, buf.getvalue())
        digest = files.digest(tmp)
    return digest


def write_benchmark(out_dir, images: np.ndarray, labels: np.ndarray, faces: np.ndarray, manifest: dict) -> dict:
    """Writes the archive, then the manifest with the archive's sha256 (the manifest last, atomically)."""
    out_dir = Path(out_dir)
    digest = write_npz(out_dir / ARCHIVE, {"images": images.astype(np.uint8), "labels": labels.astype(np.int32),
                                           "faces": faces.astype(np.int32)})
    manifest = dict(manifest, format=FORMAT, version=VERSION, archive=ARCHIVE, sha256=digest,
                    num_images=int(len(labels)))
    files.write_atomic(out_dir / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
    return manifest
