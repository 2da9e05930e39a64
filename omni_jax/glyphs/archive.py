"""The glyph benchmark's files: a checksummed ``.npz`` archive and its ``manifest.json``.

``DIR/glyphs-v1.npz`` holds ``images`` uint8 ``[M, 28, 28]`` (ink 255 on 0),
``labels`` int32 ``[M]`` and ``faces`` int32 ``[M]`` (indices into the
manifest's faces), written with fixed timestamps so that the same arrays give
the same bytes. ``DIR/manifest.json`` (written last, atomically) holds the
format name and version, the archive's sha256, each class's characters,
script, shape group and faces, each face's file and family, the splits and the
build's settings and statistics. Reading checks the format, the version and,
unless told not to, the checksum.
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
from omni_jax.errors import OmniJaxError

FORMAT = "omni-jax-glyphs"
VERSION = 1
ARCHIVE = f"glyphs-v{VERSION}.npz"
MANIFEST = "manifest.json"
WHERE = "build it with `omni-jax data glyphs --out DIR` (see docs/glyphs.md for the font packages)"


# ---------------------------------------------------------------------------------------------- write

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


def sha256_file(path) -> str:
    """The hex sha256 of the file at ``path``."""
    return files.digest(path)


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


# ---------------------------------------------------------------------------------------------- read

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
