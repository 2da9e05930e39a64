"""The glyph benchmark: real letterforms of many scripts, rendered offline from installed fonts.

Build it once with ``omni-jax data glyphs --out DIR`` (see ``docs/glyphs.md``
for the font packages) and read a split back with::

    load_dataset("glyphs", DIR, "train")                       # cross-task split
    load_dataset("glyphs:cross_domain", DIR, "test/Arabic")    # one script of a split
    load_glyphs(DIR, "test", protocol="loo_indic")

``DIR`` holds ``glyphs-v1.npz`` (``images`` uint8 ``[M, 28, 28]``, ink 255
on 0; ``labels`` int32 ``[M]``; ``faces`` int32 ``[M]``, indices into the
manifest's faces) and ``manifest.json`` (format version, the archive's
sha256, each class's characters, script, shape group and faces, each face's
file and family, the splits and the build's statistics). The loader checks
the checksum.

Splits (``protocol``), each with ``train``, ``val`` and ``test`` class lists:

- ``cross_task``: characters are disjoint. ``train`` and ``val`` are the
  background scripts' classes (``val`` 15% of them, by shape group) and
  ``test`` the evaluation scripts' (as Omniglot splits alphabets; see
  :data:`~omni_jax.data.glyph_scripts.BACKGROUND`).
- ``cross_domain``: train on Latin, Greek and Cyrillic (80% of their
  classes), and the other scripts' classes are split 50/50 by shape group
  into ``val`` and ``test`` within each script, the analogue of mini-ImageNet
  -> CUB; ``test_in`` holds the other 20% of Latin/Greek/Cyrillic, for
  in-domain accuracy.
- ``loo_<group>``: one script group left out as ``test``; the others'
  classes split 85/15 into ``train`` and ``val``.

A split name may end in ``/<Script>`` (or ``/Arabic+Hebrew+Khmer``) to keep
those scripts' classes; ``all`` is every class of the benchmark, e.g.
``all/Hebrew`` to test a Latin/Greek/Cyrillic model on every Hebrew letter.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import multiprocessing
import os
import time
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from omni_jax.data.dataset import ImageDataset
from omni_jax.data.glyph_scripts import (BACKGROUND, GROUPS, PRIORITY, SCRIPTS, SOURCE_DOMAIN, group_of,
                                         inventory)
from omni_jax.errors import OmniJaxError

log = logging.getLogger("omni_jax.data")

FORMAT = "omni-jax-glyphs"
VERSION = 1
ARCHIVE = f"glyphs-v{VERSION}.npz"
MANIFEST = "manifest.json"
WHERE = "build it with `omni-jax data glyphs --out DIR` (see docs/glyphs.md for the font packages)"


# ---------------------------------------------------------------------------------------------- archive

def write_npz(path: Path, arrays: Dict[str, np.ndarray]) -> str:
    """Writes ``arrays`` as an .npz with fixed timestamps (same arrays, same bytes), atomically; returns its sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for name in sorted(arrays):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return digest


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_benchmark(out_dir, images: np.ndarray, labels: np.ndarray, faces: np.ndarray, manifest: dict) -> dict:
    """Writes the archive, then the manifest with the archive's sha256 (the manifest last, atomically)."""
    from omni_jax.training.checkpoint import write_atomic

    out_dir = Path(out_dir)
    digest = write_npz(out_dir / ARCHIVE, {"images": images.astype(np.uint8), "labels": labels.astype(np.int32),
                                           "faces": faces.astype(np.int32)})
    manifest = dict(manifest, format=FORMAT, version=VERSION, archive=ARCHIVE, sha256=digest,
                    num_images=int(len(labels)))
    write_atomic(out_dir / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
    for name in (ARCHIVE, MANIFEST):
        os.chmod(out_dir / name, 0o644)
    return manifest


def read_manifest(data_dir) -> dict:
    data_dir = Path(data_dir)
    path = data_dir / MANIFEST
    if not data_dir.is_dir():
        raise OmniJaxError(f"glyphs: data directory {data_dir} not found; {WHERE}")
    if not path.is_file():
        raise OmniJaxError(f"glyphs: {path} not found; {WHERE}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OmniJaxError(f"glyphs: {path} is not valid JSON ({e}); {WHERE}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise OmniJaxError(f"glyphs: {path} is not a glyph benchmark manifest (format must be {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise OmniJaxError(f"glyphs: {path} has version {manifest.get('version')}, this omni-jax reads version "
                           f"{VERSION}; rebuild it with `omni-jax data glyphs --out {data_dir}`")
    for key in ("sha256", "archive", "classes", "splits"):
        if key not in manifest:
            raise OmniJaxError(f"glyphs: {path} lacks the field {key!r}; rebuild it")
    return manifest


def read_benchmark(data_dir, verify: bool = True):
    """(manifest, images, labels, faces) of a built benchmark, the checksum checked when ``verify``."""
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    archive = data_dir / manifest["archive"]
    if not archive.is_file():
        raise OmniJaxError(f"glyphs: {archive} not found (named by {data_dir / MANIFEST}); {WHERE}")
    if verify:
        digest = sha256_file(archive)
        if digest != manifest["sha256"]:
            raise OmniJaxError(f"glyphs: {archive} has sha256 {digest[:12]}..., the manifest says "
                               f"{manifest['sha256'][:12]}...: the file is damaged or from another build; "
                               f"rebuild with `omni-jax data glyphs --out {data_dir}`")
    try:
        with np.load(archive, allow_pickle=False) as z:
            images, labels, faces = z["images"], z["labels"], z["faces"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise OmniJaxError(f"glyphs: {archive} is unreadable ({type(e).__name__}: {e}); rebuild it") from None
    if images.ndim != 3 or images.dtype != np.uint8 or len(labels) != len(images) or len(faces) != len(images):
        raise OmniJaxError(f"glyphs: {archive} holds arrays of unexpected shapes; rebuild it")
    return manifest, images, labels, faces


# ---------------------------------------------------------------------------------------------- loader

def protocols(manifest: dict) -> List[str]:
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


# ---------------------------------------------------------------------------------------------- splits

def make_splits(class_script: Sequence[str], groups: Sequence[int], seed: int = 0) -> Dict[str, Dict[str, List[int]]]:
    """The class lists of every protocol (see the module docstring); whole shape groups stay on one side."""
    from omni_jax.data.glyph_select import split_groups

    scripts = np.asarray(class_script)
    groups = np.asarray(groups)
    ids = np.arange(len(scripts))

    def divide(members: np.ndarray, fractions, salt: int) -> List[np.ndarray]:
        if len(members) == 0:
            return [members for _ in fractions]
        part = np.asarray(split_groups(groups[members], fractions, seed * 1000 + salt))
        return [members[part == p] for p in range(len(fractions))]

    out: Dict[str, Dict[str, List[int]]] = {}
    background = np.isin(scripts, BACKGROUND)
    train, val = divide(ids[background], (85, 15), 1)
    out["cross_task"] = {"train": train, "val": val, "test": ids[~background]}
    source = np.isin(scripts, SOURCE_DOMAIN)
    train, test_in = divide(ids[source], (80, 20), 2)
    val, test = [], []
    for k, s in enumerate(sorted(set(scripts[~source]))):
        v, t = divide(ids[scripts == s], (50, 50), 100 + k)
        val.append(v)
        test.append(t)
    cat = lambda parts: np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)  # noqa: E731
    out["cross_domain"] = {"train": train, "val": cat(val), "test": cat(test), "test_in": test_in}
    script_group = np.asarray([group_of(s) for s in scripts])
    for k, g in enumerate(GROUPS):
        held = script_group == g
        if not held.any() or held.all():
            continue
        train, val = divide(ids[~held], (85, 15), 200 + k)
        out[f"loo_{g}"] = {"train": train, "val": val, "test": ids[held]}
    return {p: {s: sorted(int(i) for i in v) for s, v in parts.items()} for p, parts in out.items()}


# ---------------------------------------------------------------------------------------------- builder

def _map(fn, items, workers: int, progress: Callable[[str], None] = None, what: str = ""):
    """``[fn(x) for x in items]``, in order, in ``workers`` spawned processes (none if 1)."""
    results = []
    t0 = time.time()
    pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_quiet) if workers > 1 else None
    it = pool.imap(fn, items, chunksize=4) if pool else map(fn, items)
    try:
        for k, r in enumerate(it, start=1):
            results.append(r)
            if progress and (k % 250 == 0 or k == len(items)):
                progress(f"{what} {k}/{len(items)} faces ({time.time() - t0:.0f}s)")
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return results


def _quiet():
    logging.getLogger("fontTools").setLevel(logging.ERROR)


def build(out_dir, font_dirs: Sequence[str] = None, *, font_files: Sequence[str] = None,
          scripts: Sequence[str] = None, workers: Optional[int] = None, min_faces: int = 20,
          max_per_family: int = 6, max_classes_per_script: int = 100, min_classes_per_script: int = 5,
          seed: int = 0, dup_threshold: float = 0.04, min_ncm_accuracy: float = 0.5,
          merge_threshold: float = 0.06, shape_cos: float = 0.9, outlier_cos: float = 0.3,
          progress: Callable[[str], None] = None, render_cache=None) -> dict:
    """Renders the installed fonts into the glyph benchmark in ``out_dir``; returns the manifest.

    Args:
      out_dir: where ``glyphs-v1.npz`` and ``manifest.json`` go.
      font_dirs: folders searched for .ttf/.otf/.ttc/.otc files
        (default ``/usr/share/fonts`` and ``/usr/local/share/fonts``).
      font_files: these files instead of a search.
      scripts: the scripts to render (default: all of
        :data:`~omni_jax.data.glyph_scripts.SCRIPTS`).
      workers: rendering processes (default: up to 2).
      min_faces: a class needs glyphs from at least this many faces.
      max_per_family: faces kept per font family and script.
      max_classes_per_script: the classes with most faces are kept.
      min_classes_per_script: scripts with fewer classes are dropped.
      seed: for the splits.
      dup_threshold, min_ncm_accuracy, merge_threshold, shape_cos, outlier_cos: see
        :mod:`omni_jax.data.glyph_select`.
      render_cache: a pickle file of the rendered glyphs, written after
        rendering and read instead of rendering when it matches the fonts
        and scripts (for trying other selection settings quickly).
    """
    from omni_jax.data import glyph_select as sel
    from omni_jax.data.glyph_render import (DEFAULT_FONT_DIRS, face_indices, face_meta, find_font_files,
                                            render_face_star)

    progress = progress or (lambda msg: log.info("%s", msg))
    _quiet()
    t_start = time.time()
    unknown = [s for s in (scripts or ()) if s not in SCRIPTS]
    if unknown:
        raise OmniJaxError(f"glyphs: unknown script(s) {', '.join(unknown)}; known: {', '.join(SCRIPTS)}")
    inv = inventory(scripts)
    if font_files is None:
        dirs = list(font_dirs or DEFAULT_FONT_DIRS)
        font_files = find_font_files(dirs)
        if not font_files:
            raise OmniJaxError(f"glyphs: no font files (.ttf, .otf, .ttc) under {', '.join(dirs)}; install the "
                               f"fonts-* packages listed in docs/glyphs.md")
    else:
        missing = [f for f in font_files if not Path(f).is_file()]
        if missing:
            raise OmniJaxError(f"glyphs: font file {missing[0]} not found")
    faces = [(f, i) for f in sorted(font_files) for i in face_indices(f)]
    workers = workers or min(2, os.cpu_count() or 1)
    # Families with many weights and widths: only the 2 * max_per_family most different styles are rendered.
    meta = _map(face_meta, faces, workers)
    keep = sel.cap_families([m[0] or f"{p}#{i}" for m, (p, i) in zip(meta, faces)], [m[1] for m in meta],
                            list(range(len(faces))), 2 * max_per_family)
    jobs = [(p, i, inv) for (p, i), k in zip(faces, keep) if k]
    progress(f"{len(font_files)} font files, {len(faces)} faces, {len(jobs)} after the family pre-cap, "
             f"{len(inv)} scripts; rendering with {workers} process(es)")
    if render_cache and Path(render_cache).is_file():
        import pickle
        with open(render_cache, "rb") as f:
            cached = pickle.load(f)
        if cached.get("jobs") != [(p, i) for p, i, _ in jobs] or cached.get("inventory") != inv:
            raise OmniJaxError(f"glyphs: render cache {render_cache} is from other fonts or scripts; delete it")
        results = cached["results"]
        progress(f"read the rendered glyphs from {render_cache}")
    else:
        results = _map(render_face_star, jobs, workers, progress, "rendered")
        if render_cache:
            import pickle
            tmp = Path(f"{render_cache}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                pickle.dump({"jobs": [(p, i) for p, i, _ in jobs], "inventory": inv, "results": results}, f, protocol=4)
            os.replace(tmp, render_cache)
    t_render = time.time() - t_start
    return assemble(results, out_dir, inv, min_faces=min_faces, max_per_family=max_per_family,
                    max_classes_per_script=max_classes_per_script, min_classes_per_script=min_classes_per_script,
                    seed=seed, dup_threshold=dup_threshold, min_ncm_accuracy=min_ncm_accuracy,
                    merge_threshold=merge_threshold, shape_cos=shape_cos, outlier_cos=outlier_cos, progress=progress,
                    stats={"font_files": len(font_files), "faces_found": len(faces), "faces_rendered": len(jobs),
                           "render_seconds": round(t_render, 1)}, t_start=t_start)


def assemble(results, out_dir, inv, *, min_faces: int = 20, max_per_family: int = 6,
             max_classes_per_script: int = 100, min_classes_per_script: int = 5, seed: int = 0,
             dup_threshold: float = 0.04, min_ncm_accuracy: float = 0.5, merge_threshold: float = 0.06,
             shape_cos: float = 0.9, outlier_cos: float = 0.3, progress: Callable[[str], None] = None, stats: dict = None,
             t_start: float = None) -> dict:
    """The selection and writing half of :func:`build`, from rendered faces (a list of ``FaceResult``)."""
    from omni_jax.data import glyph_select as sel

    progress = progress or (lambda msg: log.info("%s", msg))
    t_start = t_start or time.time()
    stats = dict(stats or {})
    skipped: Dict[str, int] = {}
    for r in results:
        for k, v in r.dropped.items():
            stats[f"glyphs_dropped_{k}"] = stats.get(f"glyphs_dropped_{k}", 0) + v
        if r.skipped:
            skipped[r.skipped] = skipped.get(r.skipped, 0) + 1
    faces = [r for r in results if r.units]
    stats["faces_with_glyphs"] = len(faces)

    # The sample table: one row per (face, script, char).
    rows_face, rows_script, rows_char, rows_img = [], [], [], []
    for f, r in enumerate(faces):
        for script, (chars, imgs) in r.units.items():
            rows_face += [f] * len(chars)
            rows_script += [script] * len(chars)
            rows_char += chars
            rows_img.append(imgs)
    if not rows_img:
        raise OmniJaxError("glyphs: no font draws any of the scripts; install the fonts-* packages in docs/glyphs.md")
    face_of = np.asarray(rows_face, np.int64)
    script_of = np.asarray(rows_script)
    char_of = np.asarray(rows_char)
    images = np.concatenate(rows_img)
    del rows_img
    alive = np.ones(len(images), bool)

    # Per script: duplicate faces, faces that do not draw the script, the family cap.
    unit_stats = {"units": 0, "duplicate": 0, "off_script": 0, "family_cap": 0}
    ncm_report = {}
    for script in inv:
        core = inv[script][0] or inv[script][1]
        rows = np.flatnonzero((script_of == script) & np.isin(char_of, core))
        if len(rows) == 0:
            continue
        units = np.unique(face_of[rows])
        unit_index = {u: i for i, u in enumerate(units)}
        char_index = {c: i for i, c in enumerate(core)}
        x, m = sel.unit_matrix(np.asarray([unit_index[u] for u in face_of[rows]]),
                               np.asarray([char_index[c] for c in char_of[rows]]),
                               sel.features(images[rows]), len(units), len(core))
        unit_stats["units"] += len(units)
        dup = sel.find_duplicate_units(x, m, dup_threshold)
        same = np.eye(len(core), dtype=bool)
        for c, i in char_index.items():
            for o in {c.upper(), c.lower()}:
                if o in char_index:
                    same[i, char_index[o]] = True
        off = np.zeros(len(units), bool)
        live = ~dup
        if live.sum() >= 3:
            off_live, acc = sel.find_off_script_units(x[live], m[live], same, min_ncm_accuracy)
            off[np.flatnonzero(live)[off_live]] = True
        keep = ~dup & ~off
        fam = [faces[u].family for u in units]
        sty = [faces[u].style for u in units]
        capped = np.zeros(len(units), bool)
        kidx = np.flatnonzero(keep)
        capped[kidx] = ~sel.cap_families([fam[i] for i in kidx], [sty[i] for i in kidx], kidx, max_per_family)
        keep &= ~capped
        unit_stats["duplicate"] += int(dup.sum())
        unit_stats["off_script"] += int(off.sum())
        unit_stats["family_cap"] += int(capped.sum())
        ncm_report[script] = {"units": int(len(units)), "duplicate": int(dup.sum()), "off_script": int(off.sum()),
                              "family_cap": int(capped.sum()), "kept": int(keep.sum())}
        dropped_units = set(units[~keep].tolist())
        in_script = script_of == script
        alive[in_script & np.isin(face_of, list(dropped_units))] = False
        # a kept unit keeps its extra letters too; nothing else to do
    progress(f"units: {unit_stats}")

    # Classes before merging: (script, char) with at least 3 faces.
    idx = np.flatnonzero(alive)
    keys = sorted({(script_of[i], char_of[i]) for i in idx}, key=lambda k: (PRIORITY.index(k[0]), ord(k[1])))
    key_index = {k: i for i, k in enumerate(keys)}
    row_class = np.full(len(images), -1, np.int64)
    row_class[idx] = [key_index[(script_of[i], char_of[i])] for i in idx]
    order = idx[np.lexsort((face_of[idx], row_class[idx]))]
    bounds = np.searchsorted(row_class[order], np.arange(len(keys) + 1))
    class_rows = [order[bounds[k]:bounds[k + 1]] for k in range(len(keys))]
    cand = [k for k in range(len(keys)) if len(class_rows[k]) >= 3]
    groups = sel.merge_lookalikes([keys[k][0] for k in cand], [face_of[class_rows[k]] for k in cand],
                                  [sel.features(images[class_rows[k]]) for k in cand], merge_threshold)
    merged_into = {}
    for g in groups:
        members = [cand[i] for i in g]
        members.sort(key=lambda k: (PRIORITY.index(keys[k][0]), ord(keys[k][1])))
        for k in members[1:]:
            merged_into[k] = members[0]
    # Final candidate classes: one image per face, the first member's glyph where the face has several.
    classes = []
    for k in range(len(keys)):
        if k in merged_into:
            continue
        members = [k] + sorted((j for j, h in merged_into.items() if h == k),
                               key=lambda j: (PRIORITY.index(keys[j][0]), ord(keys[j][1])))
        seen, rows = set(), []
        for j in members:
            for r in class_rows[j]:
                if face_of[r] not in seen:
                    seen.add(face_of[r])
                    rows.append(r)
        rows = np.asarray(sorted(rows, key=lambda r: face_of[r]), np.int64)
        classes.append({"script": str(keys[k][0]), "chars": [str(keys[j][1]) for j in members], "rows": rows})
    stats["merged_lookalike_groups"] = len(groups)
    stats["classes_before_min_faces"] = len(classes)
    classes = [c for c in classes if len(c["rows"]) >= min_faces]
    if classes:
        rows = np.concatenate([c["rows"] for c in classes])
        labels = np.repeat(np.arange(len(classes)), [len(c["rows"]) for c in classes])
        outlier = sel.find_outlier_glyphs(sel.features(images[rows]), labels, outlier_cos)
        stats["glyphs_dropped_outlier"] = int(outlier.sum())
        for k, c in enumerate(classes):
            c["rows"] = c["rows"][~outlier[labels == k]]
        classes = [c for c in classes if len(c["rows"]) >= min_faces]
    by_script: Dict[str, list] = {}
    for c in classes:
        by_script.setdefault(c["script"], []).append(c)
    final = []
    for script in sorted(by_script, key=PRIORITY.index):
        cs = sorted(by_script[script], key=lambda c: (-len(c["rows"]), ord(c["chars"][0])))[:max_classes_per_script]
        if len(cs) < min_classes_per_script:
            stats[f"script_dropped_{script}"] = len(cs)
            continue
        final += sorted(cs, key=lambda c: ord(c["chars"][0]))
    if not final:
        raise OmniJaxError(f"glyphs: no class has glyphs from {min_faces} faces; install more fonts "
                           f"(docs/glyphs.md) or lower min_faces")

    mean_feats = np.stack([sel.features(images[c["rows"]]).mean(0) for c in final])
    shape = sel.shape_groups([c["chars"] for c in final], [c["script"] for c in final], mean_feats, shape_cos)
    splits = make_splits([c["script"] for c in final], shape, seed)

    # Renumber the faces that are used; write.
    used_faces = sorted({int(face_of[r]) for c in final for r in c["rows"]})
    face_id = {f: i for i, f in enumerate(used_faces)}
    out_images, out_labels, out_faces = [], [], []
    for k, c in enumerate(final):
        out_images.append(images[c["rows"]])
        out_labels.append(np.full(len(c["rows"]), k, np.int32))
        out_faces.append(np.asarray([face_id[int(face_of[r])] for r in c["rows"]], np.int32))
    out_images = np.concatenate(out_images)
    counts = [len(c["rows"]) for c in final]
    script_names = sorted({c["script"] for c in final}, key=PRIORITY.index)
    manifest = {
        "image_size": int(out_images.shape[1]),
        "ink": "255 on 0; each glyph cropped to its ink box, longer side 24 px, centred in 28x28",
        "num_classes": len(final),
        "num_scripts": len(script_names),
        "faces_per_class": {"min": int(min(counts)), "median": float(np.median(counts)), "max": int(max(counts)),
                            "mean": round(float(np.mean(counts)), 1)},
        "scripts": {s: {"group": group_of(s), "side": "background" if s in BACKGROUND else "evaluation",
                        "classes": sum(c["script"] == s for c in final)} for s in script_names},
        "classes": [{"script": c["script"], "chars": c["chars"],
                     "codepoints": [f"U+{ord(ch):04X}" for ch in c["chars"]],
                     "group": int(shape[k]), "faces": len(c["rows"])} for k, c in enumerate(final)],
        "faces": [{"file": faces[f].path, "index": faces[f].index, "family": faces[f].family,
                   "style": faces[f].style} for f in used_faces],
        "splits": splits,
        "settings": {"min_faces": min_faces, "max_per_family": max_per_family,
                     "max_classes_per_script": max_classes_per_script,
                     "min_classes_per_script": min_classes_per_script, "seed": seed,
                     "dup_threshold": dup_threshold, "min_ncm_accuracy": min_ncm_accuracy,
                     "merge_threshold": merge_threshold, "shape_cos": shape_cos, "outlier_cos": outlier_cos},
        "stats": dict(stats, **{f"units_{k}": v for k, v in unit_stats.items()},
                      faces_skipped=skipped, per_script=ncm_report,
                      build_seconds=round(time.time() - t_start, 1)),
    }
    manifest = write_benchmark(out_dir, out_images, np.concatenate(out_labels), np.concatenate(out_faces), manifest)
    progress(f"wrote {Path(out_dir) / ARCHIVE}: {len(final)} classes in {len(script_names)} scripts, "
             f"{len(out_images)} glyphs from {len(used_faces)} faces ({time.time() - t_start:.0f}s)")
    return manifest
