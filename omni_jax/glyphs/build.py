"""Building the glyph benchmark from the installed fonts: ``omni-jax data glyphs --out DIR``.

:func:`build` runs these phases:

1. :func:`~omni_jax.glyphs.archive.check_writable`: the output folder, before minutes of rendering;
2. :func:`find_faces`: the font files and the faces in them;
3. :func:`precap_families`: per family, only the most different styles are rendered;
4. :func:`render_faces`: each face drawn (:mod:`omni_jax.glyphs.render`) in worker
   processes, or read from a render cache;
5. :func:`assemble`: the selection (:mod:`omni_jax.glyphs.select`) and the writing, from
   the rendered faces: :func:`collect_faces`, :func:`sample_table`, :func:`drop_units`
   (duplicate, off-script and over-cap faces per script), :func:`candidate_classes`,
   :func:`lookalike_heads` and :func:`merged_classes` (look-alikes of different scripts
   become one class), :func:`drop_outliers`, :func:`cap_scripts`,
   :func:`group_and_split`, :func:`output_arrays`, :func:`make_manifest`, then
   :func:`~omni_jax.glyphs.archive.write_benchmark`.

The same fonts and options give the same bytes. fontTools' logger is quiet
only while fonts are read (:func:`~omni_jax.glyphs.render.quiet_fonttools`).
"""
from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import pickle
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from omni_jax import files
from omni_jax.data.formats.glyphs import ARCHIVE
from omni_jax.errors import OmniJaxError
from omni_jax.glyphs import select as sel
from omni_jax.glyphs.archive import check_writable, write_benchmark
from omni_jax.glyphs.render import (DEFAULT_FONT_DIRS, Quietly, face_indices, face_meta, find_font_files,
                                    quiet_fonttools, render_face_star)
from omni_jax.glyphs.scripts import BACKGROUND, PRIORITY, SCRIPTS, group_of, inventory
from omni_jax.glyphs.splits import make_splits

log = logging.getLogger("omni_jax.glyphs")


# ---------------------------------------------------------------------------------------------- rendering

def _map(fn, items, workers: int, progress: Callable[[str], None] = None, what: str = ""):
    """``[fn(x) for x in items]``, in order, in ``workers`` spawned processes (none if 1), fontTools quiet in each."""
    fn = Quietly(fn)
    results = []
    t0 = time.time()
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    it = pool.imap(fn, items, chunksize=4) if pool else map(fn, items)
    try:
        for k, r in enumerate(it, start=1):
            results.append(r)
            if progress and (k % 250 == 0 or k == len(items)):
                progress(f"{what} {k}/{len(items)} faces ({time.time() - t0:.0f}s)")
    except BaseException:
        if pool is not None:   # Ctrl-C or an error: stop the workers now (joining would wait for them all)
            pool.terminate()
            pool.join()
        raise
    if pool is not None:
        pool.close()
        pool.join()
    return results


def find_faces(font_dirs: Optional[Sequence[str]], font_files: Optional[Sequence[str]]):
    """(font files, faces): ``font_files`` or those under ``font_dirs``, and their faces ``(path, index)``, sorted."""
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
    return font_files, [(f, i) for f in sorted(font_files) for i in face_indices(f)]


def precap_families(faces: Sequence[Tuple[str, int]], workers: int, max_per_family: int) -> List[Tuple[str, int]]:
    """The faces to render: of families with many weights and widths, the ``2 * max_per_family`` most different."""
    meta = _map(face_meta, faces, workers)
    keep = sel.cap_families([m[0] or f"{p}#{i}" for m, (p, i) in zip(meta, faces)], [m[1] for m in meta],
                            list(range(len(faces))), 2 * max_per_family)
    return [(p, i) for (p, i), k in zip(faces, keep) if k]


def render_faces(faces: Sequence[Tuple[str, int]], inv, workers: int, progress: Callable[[str], None],
                 render_cache=None) -> list:
    """A ``FaceResult`` per face, rendered, or read from ``render_cache`` (then written there when it is absent)."""
    names = [(p, i) for p, i in faces]
    if render_cache and (Path(render_cache).exists() or Path(render_cache).is_symlink()):
        raw = files.read_bytes(render_cache, hint="delete it")
        try:
            cached = pickle.loads(raw)
        except Exception as e:  # noqa: BLE001 (a damaged pickle raises anything)
            raise OmniJaxError(f"glyphs: render cache {render_cache} is unreadable ({files.reason(e)}); "
                               f"delete it") from None
        if not isinstance(cached, dict) or "results" not in cached:
            raise OmniJaxError(f"glyphs: render cache {render_cache} is not a render cache; delete it")
        if cached.get("jobs") != names or cached.get("inventory") != inv:
            raise OmniJaxError(f"glyphs: render cache {render_cache} is from other fonts or scripts; delete it")
        progress(f"read the rendered glyphs from {render_cache}")
        return cached["results"]
    results = _map(render_face_star, [(p, i, inv) for p, i in faces], workers, progress, "rendered")
    if render_cache:
        files.write_atomic(render_cache, pickle.dumps({"jobs": names, "inventory": inv, "results": results},
                                                      protocol=4))
    return results


def build(out_dir, font_dirs: Sequence[str] = None, *, font_files: Sequence[str] = None,
          scripts: Sequence[str] = None, workers: Optional[int] = None, min_faces: int = 20,
          max_per_family: int = 6, max_classes_per_script: int = 100, min_classes_per_script: int = 5,
          seed: int = 0, dup_threshold: float = 0.04, min_ncm_accuracy: float = 0.5,
          merge_threshold: float = 0.06, shape_cos: float = 0.9, outlier_cos: float = 0.3,
          progress: Callable[[str], None] = None, render_cache=None) -> dict:
    """Renders the installed fonts into the glyph benchmark in ``out_dir``; returns the manifest.

    Args:
      out_dir: where ``glyphs-v1.npz`` and ``manifest.json`` go; checked to be
        writable before anything is rendered.
      font_dirs: folders searched for .ttf/.otf/.ttc/.otc files
        (default ``/usr/share/fonts`` and ``/usr/local/share/fonts``).
      font_files: these files instead of a search.
      scripts: the scripts to render (default: all of
        :data:`~omni_jax.glyphs.scripts.SCRIPTS`).
      workers: rendering processes (default: up to 2).
      min_faces: a class needs glyphs from at least this many faces.
      max_per_family: faces kept per font family and script.
      max_classes_per_script: the classes with most faces are kept.
      min_classes_per_script: scripts with fewer classes are dropped.
      seed: for the splits.
      dup_threshold, min_ncm_accuracy, merge_threshold, shape_cos, outlier_cos: see
        :mod:`omni_jax.glyphs.select`.
      render_cache: a pickle file of the rendered glyphs, written after
        rendering and read instead of rendering when it matches the fonts
        and scripts (for trying other selection settings quickly).
    """
    progress = progress or (lambda msg: log.info("%s", msg))
    t_start = time.time()
    unknown = [s for s in (scripts or ()) if s not in SCRIPTS]
    if unknown:
        raise OmniJaxError(f"glyphs: unknown script(s) {', '.join(unknown)}; known: {', '.join(SCRIPTS)}")
    check_writable(out_dir)
    inv = inventory(scripts)
    workers = workers or min(2, os.cpu_count() or 1)
    with quiet_fonttools():
        font_files, faces = find_faces(font_dirs, font_files)
        jobs = precap_families(faces, workers, max_per_family)
        progress(f"{len(font_files)} font files, {len(faces)} faces, {len(jobs)} after the family pre-cap, "
                 f"{len(inv)} scripts; rendering with {workers} process(es)")
        results = render_faces(jobs, inv, workers, progress, render_cache)
    t_render = time.time() - t_start
    return assemble(results, out_dir, inv, min_faces=min_faces, max_per_family=max_per_family,
                    max_classes_per_script=max_classes_per_script, min_classes_per_script=min_classes_per_script,
                    seed=seed, dup_threshold=dup_threshold, min_ncm_accuracy=min_ncm_accuracy,
                    merge_threshold=merge_threshold, shape_cos=shape_cos, outlier_cos=outlier_cos, progress=progress,
                    stats={"font_files": len(font_files), "faces_found": len(faces), "faces_rendered": len(jobs),
                           "render_seconds": round(t_render, 1)}, t_start=t_start)


# ---------------------------------------------------------------------------------------------- selection

@dataclasses.dataclass
class Samples:
    """The sample table: one row per (face, script, character) rendered."""
    face: np.ndarray     # int64 [n]: index into the faces that draw something
    script: np.ndarray   # str [n]
    char: np.ndarray     # str [n]
    images: np.ndarray   # uint8 [n, 28, 28]
    alive: np.ndarray    # bool [n]: not (yet) dropped


def _priority(key) -> Tuple[int, int]:
    """Sort key of a ``(script, char)`` class: script in :data:`PRIORITY` order, then code point."""
    return PRIORITY.index(key[0]), ord(key[1])


def collect_faces(results, stats: dict):
    """(the faces that draw something, {why: count} of skipped faces); adds the rendering's drop counts to ``stats``."""
    skipped: Dict[str, int] = {}
    for r in results:
        for k, v in r.dropped.items():
            stats[f"glyphs_dropped_{k}"] = stats.get(f"glyphs_dropped_{k}", 0) + v
        if r.skipped:
            skipped[r.skipped] = skipped.get(r.skipped, 0) + 1
    faces = [r for r in results if r.units]
    stats["faces_with_glyphs"] = len(faces)
    return faces, skipped


def sample_table(faces) -> Samples:
    """Every glyph of ``faces`` as a row of the sample table, all alive."""
    rows_face, rows_script, rows_char, rows_img = [], [], [], []
    for f, r in enumerate(faces):
        for script, (chars, imgs) in r.units.items():
            rows_face += [f] * len(chars)
            rows_script += [script] * len(chars)
            rows_char += chars
            rows_img.append(imgs)
    if not rows_img:
        raise OmniJaxError("glyphs: no font draws any of the scripts; install the fonts-* packages in docs/glyphs.md")
    images = np.concatenate(rows_img)
    return Samples(np.asarray(rows_face, np.int64), np.asarray(rows_script), np.asarray(rows_char), images,
                   np.ones(len(images), bool))


def case_partners(core: Sequence[str]) -> np.ndarray:
    """``[C, C]`` bool: ``same[i, j]`` when core letter ``j`` is letter ``i`` or its other case."""
    char_index = {c: i for i, c in enumerate(core)}
    same = np.eye(len(core), dtype=bool)
    for c, i in char_index.items():
        for o in {c.upper(), c.lower()}:
            if o in char_index:
                same[i, char_index[o]] = True
    return same


def script_units(samples: Samples, script: str, core: Sequence[str]):
    """(unit face ids, ``[U, C, d]`` features, ``[U, C]`` mask) of the faces drawing ``script``'s ``core``, or None."""
    rows = np.flatnonzero((samples.script == script) & np.isin(samples.char, core))
    if len(rows) == 0:
        return None
    units = np.unique(samples.face[rows])
    unit_index = {u: i for i, u in enumerate(units)}
    char_index = {c: i for i, c in enumerate(core)}
    x, m = sel.unit_matrix(np.asarray([unit_index[u] for u in samples.face[rows]]),
                           np.asarray([char_index[c] for c in samples.char[rows]]),
                           sel.features(samples.images[rows]), len(units), len(core))
    return units, x, m


def judge_units(x: np.ndarray, m: np.ndarray, same: np.ndarray, families: Sequence[str], styles: Sequence[str], *,
                dup_threshold: float, min_ncm_accuracy: float, max_per_family: int):
    """Boolean ``[U]`` masks (duplicate, off_script, family_capped) of one script's units, each among those left."""
    dup = sel.find_duplicate_units(x, m, dup_threshold)
    off = np.zeros(len(x), bool)
    live = ~dup
    if live.sum() >= 3:
        off_live, _ = sel.find_off_script_units(x[live], m[live], same, min_ncm_accuracy)
        off[np.flatnonzero(live)[off_live]] = True
    keep = ~dup & ~off
    capped = np.zeros(len(x), bool)
    kidx = np.flatnonzero(keep)
    capped[kidx] = ~sel.cap_families([families[i] for i in kidx], [styles[i] for i in kidx], kidx, max_per_family)
    return dup, off, capped


def drop_units(samples: Samples, faces, inv, *, dup_threshold: float, min_ncm_accuracy: float,
               max_per_family: int):
    """Per script, kills the rows of duplicate, off-script and over-cap units; returns (totals, per-script counts)."""
    totals = {"units": 0, "duplicate": 0, "off_script": 0, "family_cap": 0}
    per_script = {}
    for script in inv:
        core = inv[script][0] or inv[script][1]
        found = script_units(samples, script, core)
        if found is None:
            continue
        units, x, m = found
        dup, off, capped = judge_units(x, m, case_partners(core), [faces[u].family for u in units],
                                       [faces[u].style for u in units], dup_threshold=dup_threshold,
                                       min_ncm_accuracy=min_ncm_accuracy, max_per_family=max_per_family)
        keep = ~dup & ~off & ~capped
        totals["units"] += len(units)
        totals["duplicate"] += int(dup.sum())
        totals["off_script"] += int(off.sum())
        totals["family_cap"] += int(capped.sum())
        per_script[script] = {"units": int(len(units)), "duplicate": int(dup.sum()), "off_script": int(off.sum()),
                              "family_cap": int(capped.sum()), "kept": int(keep.sum())}
        # a kept unit keeps its extra letters too
        samples.alive[(samples.script == script) & np.isin(samples.face, units[~keep])] = False
    return totals, per_script


# ---------------------------------------------------------------------------------------------- classes

def candidate_classes(samples: Samples):
    """(keys, rows): the live ``(script, char)`` pairs in priority order, and each one's live rows sorted by face."""
    idx = np.flatnonzero(samples.alive)
    keys = sorted({(samples.script[i], samples.char[i]) for i in idx}, key=_priority)
    key_index = {k: i for i, k in enumerate(keys)}
    row_class = np.full(len(samples.images), -1, np.int64)
    row_class[idx] = [key_index[(samples.script[i], samples.char[i])] for i in idx]
    order = idx[np.lexsort((samples.face[idx], row_class[idx]))]
    bounds = np.searchsorted(row_class[order], np.arange(len(keys) + 1))
    return keys, [order[bounds[k]:bounds[k + 1]] for k in range(len(keys))]


def lookalike_heads(samples: Samples, keys, class_rows, merge_threshold: float):
    """({merged class: its group's head}, number of groups): look-alike classes of different scripts.

    Only classes with at least 3 faces are compared; a group's head is its
    first class in priority order.
    """
    cand = [k for k in range(len(keys)) if len(class_rows[k]) >= 3]
    groups = sel.merge_lookalikes([keys[k][0] for k in cand], [samples.face[class_rows[k]] for k in cand],
                                  [sel.features(samples.images[class_rows[k]]) for k in cand], merge_threshold)
    merged_into = {}
    for g in groups:
        members = sorted((cand[i] for i in g), key=lambda k: _priority(keys[k]))
        for k in members[1:]:
            merged_into[k] = members[0]
    return merged_into, len(groups)


def merged_classes(samples: Samples, keys, class_rows, merged_into) -> List[dict]:
    """The classes, look-alikes merged into their head: script, chars (head first) and rows sorted by face.

    One row per face: where a face draws several members, the first member's glyph.
    """
    classes = []
    for k in range(len(keys)):
        if k in merged_into:
            continue
        members = [k] + sorted((j for j, h in merged_into.items() if h == k), key=lambda j: _priority(keys[j]))
        seen, rows = set(), []
        for j in members:
            for r in class_rows[j]:
                if samples.face[r] not in seen:
                    seen.add(samples.face[r])
                    rows.append(r)
        rows = np.asarray(sorted(rows, key=lambda r: samples.face[r]), np.int64)
        classes.append({"script": str(keys[k][0]), "chars": [str(keys[j][1]) for j in members], "rows": rows})
    return classes


def drop_outliers(classes: List[dict], images: np.ndarray, min_faces: int, outlier_cos: float,
                  stats: dict) -> List[dict]:
    """The classes with ``min_faces`` faces, their outlier glyphs dropped (counted in ``stats``), checked again."""
    classes = [c for c in classes if len(c["rows"]) >= min_faces]
    if classes:
        rows = np.concatenate([c["rows"] for c in classes])
        labels = np.repeat(np.arange(len(classes)), [len(c["rows"]) for c in classes])
        outlier = sel.find_outlier_glyphs(sel.features(images[rows]), labels, outlier_cos)
        stats["glyphs_dropped_outlier"] = int(outlier.sum())
        for k, c in enumerate(classes):
            c["rows"] = c["rows"][~outlier[labels == k]]
        classes = [c for c in classes if len(c["rows"]) >= min_faces]
    return classes


def cap_scripts(classes: List[dict], max_classes_per_script: int, min_classes_per_script: int,
                stats: dict) -> List[dict]:
    """Per script, in priority order, its ``max_classes_per_script`` classes with most faces, in code point order.

    A script left with fewer than ``min_classes_per_script`` is dropped (``stats["script_dropped_<script>"]``).
    """
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
    return final


def group_and_split(final: List[dict], images: np.ndarray, shape_cos: float, seed: int):
    """(shape group per class, the splits of every protocol)."""
    mean_feats = np.stack([sel.features(images[c["rows"]]).mean(0) for c in final])
    shape = sel.shape_groups([c["chars"] for c in final], [c["script"] for c in final], mean_feats, shape_cos)
    return shape, make_splits([c["script"] for c in final], shape, seed)


# ---------------------------------------------------------------------------------------------- output

def output_arrays(final: List[dict], face_of: np.ndarray, images: np.ndarray):
    """(used face ids, images, labels, faces): the archive's arrays, the used faces renumbered from 0."""
    used_faces = sorted({int(face_of[r]) for c in final for r in c["rows"]})
    face_id = {f: i for i, f in enumerate(used_faces)}
    out_images, out_labels, out_faces = [], [], []
    for k, c in enumerate(final):
        out_images.append(images[c["rows"]])
        out_labels.append(np.full(len(c["rows"]), k, np.int32))
        out_faces.append(np.asarray([face_id[int(face_of[r])] for r in c["rows"]], np.int32))
    return used_faces, np.concatenate(out_images), np.concatenate(out_labels), np.concatenate(out_faces)


def make_manifest(final: List[dict], faces, used_faces: List[int], shape: Sequence[int], splits: dict,
                  image_size: int, settings: dict, stats: dict) -> dict:
    """The manifest, less what :func:`~omni_jax.glyphs.archive.write_benchmark` adds (format, checksum)."""
    counts = [len(c["rows"]) for c in final]
    script_names = sorted({c["script"] for c in final}, key=PRIORITY.index)
    return {
        "image_size": int(image_size),
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
        "settings": settings,
        "stats": stats,
    }


def assemble(results, out_dir, inv, *, min_faces: int = 20, max_per_family: int = 6,
             max_classes_per_script: int = 100, min_classes_per_script: int = 5, seed: int = 0,
             dup_threshold: float = 0.04, min_ncm_accuracy: float = 0.5, merge_threshold: float = 0.06,
             shape_cos: float = 0.9, outlier_cos: float = 0.3, progress: Callable[[str], None] = None, stats: dict = None,
             t_start: float = None) -> dict:
    """The selection and writing half of :func:`build`, from rendered faces (a list of ``FaceResult``)."""
    progress = progress or (lambda msg: log.info("%s", msg))
    t_start = t_start or time.time()
    settings = {"min_faces": min_faces, "max_per_family": max_per_family,
                "max_classes_per_script": max_classes_per_script, "min_classes_per_script": min_classes_per_script,
                "seed": seed, "dup_threshold": dup_threshold, "min_ncm_accuracy": min_ncm_accuracy,
                "merge_threshold": merge_threshold, "shape_cos": shape_cos, "outlier_cos": outlier_cos}
    stats = dict(stats or {})
    faces, skipped = collect_faces(results, stats)
    samples = sample_table(faces)
    unit_stats, per_script = drop_units(samples, faces, inv, dup_threshold=dup_threshold,
                                        min_ncm_accuracy=min_ncm_accuracy, max_per_family=max_per_family)
    progress(f"units: {unit_stats}")
    keys, class_rows = candidate_classes(samples)
    merged_into, num_groups = lookalike_heads(samples, keys, class_rows, merge_threshold)
    stats["merged_lookalike_groups"] = num_groups
    classes = merged_classes(samples, keys, class_rows, merged_into)
    stats["classes_before_min_faces"] = len(classes)
    classes = drop_outliers(classes, samples.images, min_faces, outlier_cos, stats)
    final = cap_scripts(classes, max_classes_per_script, min_classes_per_script, stats)
    if not final:
        raise OmniJaxError(f"glyphs: no class has glyphs from {min_faces} faces; install more fonts "
                           f"(docs/glyphs.md) or lower min_faces")
    shape, splits = group_and_split(final, samples.images, shape_cos, seed)
    used_faces, images, labels, face_ids = output_arrays(final, samples.face, samples.images)
    stats = dict(stats, **{f"units_{k}": v for k, v in unit_stats.items()}, faces_skipped=skipped,
                 per_script=per_script, build_seconds=round(time.time() - t_start, 1))
    manifest = make_manifest(final, faces, used_faces, shape, splits, images.shape[1], settings, stats)
    manifest = write_benchmark(out_dir, images, labels, face_ids, manifest)
    progress(f"wrote {Path(out_dir) / ARCHIVE}: {len(final)} classes in {manifest['num_scripts']} scripts, "
             f"{len(images)} glyphs from {len(used_faces)} faces ({time.time() - t_start:.0f}s)")
    return manifest
