"""Rendering the characters of one font face into 28x28 grayscale glyph images.

A face is one font in a font file (a ``.ttc`` collection holds several).
fontTools reads its character map and names; Pillow draws each character
alone, without shaping (so Arabic letters are their isolated forms). A glyph
image is cropped to its ink box and scaled, keeping its aspect ratio, so that
the longer side spans :data:`INK` pixels, centred on a ``size x size``
canvas: ink is 255 on a 0 background.

Dropped here, per face and script, and counted:

- ``uncovered``: the face draws under 80% of the script's core letters (its
  cmap lacks them), so it is not a face of that script;
- ``shared_glyph``: two letters of one script mapped to one glyph (fonts that
  draw lower case as capitals, or one placeholder for many letters);
- ``missing_box``: the image equals the face's ``.notdef`` glyph;
- ``empty``: no ink, or a speck;
- ``placeholder``: three or more letters of the script render the same image.

fontTools logs a warning for every odd table of every font; :func:`quiet_fonttools`
silences its logger for the duration of a block only (and :class:`Quietly` does so
around each call in a worker process), leaving the process's logging as it was.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

SIZE = 28
INK = 24          # the longer side of the ink box, in pixels of the SIZE x SIZE image
RENDER_PX = 56    # the font size glyphs are drawn at before scaling down
MIN_CORE_COVERAGE = 0.8
FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
DEFAULT_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")
_NOTDEF_PROBE = "\U0010FFFD"  # a private-use code point no font maps: draws glyph 0
FONTTOOLS_LOGGER = "fontTools"


@contextlib.contextmanager
def quiet_fonttools(level: int = logging.ERROR):
    """Raises the ``fontTools`` logger to at least ``level`` inside the block, then restores its level.

    Only that logger's own level changes (its child loggers follow it), and
    only until the block exits, by an exception too.
    """
    logger = logging.getLogger(FONTTOOLS_LOGGER)
    before = logger.level
    logger.setLevel(max(before, level))
    try:
        yield
    finally:
        logger.setLevel(before)


class Quietly:
    """``fn`` called inside :func:`quiet_fonttools`; picklable when ``fn`` is, for a worker process's tasks."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args, **kwargs):
        with quiet_fonttools():
            return self.fn(*args, **kwargs)


@dataclasses.dataclass
class FaceResult:
    path: str
    index: int
    family: str = ""
    style: str = ""
    units: Dict[str, Tuple[List[str], np.ndarray]] = dataclasses.field(default_factory=dict)  # script -> (chars, [n,S,S])
    dropped: Dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: Optional[str] = None  # why the whole face was skipped


def find_font_files(dirs: Iterable[str]) -> List[str]:
    """Font files under ``dirs``, sorted, without repeats (symlinks resolved)."""
    seen, out = set(), []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            continue
        for root, _, files in os.walk(d, followlinks=False):
            for f in files:
                p = Path(root) / f
                if p.suffix.lower() in FONT_SUFFIXES:
                    real = os.path.realpath(p)
                    if real not in seen and os.path.isfile(real):
                        seen.add(real)
                        out.append(str(p))
    return sorted(out)


def face_indices(path: str) -> List[int]:
    """The face numbers in a font file (one for .ttf/.otf)."""
    if not path.lower().endswith((".ttc", ".otc")):
        return [0]
    from fontTools.ttLib import TTCollection

    try:
        with TTCollection(path, lazy=True) as c:
            return list(range(len(c.fonts)))
    except Exception:
        return []


def normalize(ink: np.ndarray, size: int = SIZE, ink_px: int = INK, threshold: int = 16) -> Optional[np.ndarray]:
    """A drawn glyph (uint8, ink high) cropped to its ink box and fitted into ``size x size``; None if empty."""
    from PIL import Image

    ys, xs = np.nonzero(ink > threshold)
    if len(ys) < 4:
        return None
    a = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = a.shape
    scale = ink_px / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray(a).resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=2.0))
    out = np.zeros((size, size), np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = small
    return out


def draw(font, ch: str) -> Optional[np.ndarray]:
    """``ch`` drawn alone with the Pillow ``font``, uint8 ink-high, just covering its box."""
    from PIL import Image, ImageDraw

    try:
        x0, y0, x1, y1 = font.getbbox(ch)
    except Exception:
        return None
    if x1 <= x0 or y1 <= y0:
        return None
    im = Image.new("L", (x1 - x0 + 4, y1 - y0 + 4))
    ImageDraw.Draw(im).text((2 - x0, 2 - y0), ch, font=font, fill=255)
    return np.asarray(im)


def _names(tt) -> Tuple[str, str]:
    name = tt["name"] if "name" in tt else None
    if name is None:
        return "", ""
    family = name.getBestFamilyName() or ""
    style = name.getBestSubFamilyName() or ""
    return str(family), str(style)


def render_face(path: str, index: int, chars: Dict[str, Tuple[Sequence[str], Sequence[str]]],
                size: int = SIZE, render_px: int = RENDER_PX) -> FaceResult:
    """Every character of ``chars`` (script -> (core, extra)) that the face draws, as glyph images."""
    from fontTools.ttLib import TTFont
    from PIL import ImageFont

    res = FaceResult(path, index)
    drop = res.dropped
    try:
        tt = TTFont(path, fontNumber=index, lazy=True)
        if not any(t in tt for t in ("glyf", "CFF ", "CFF2")):
            res.skipped = "no outlines (bitmap or colour-only font)"
            return res
        cmap = tt.getBestCmap() or {}
        res.family, res.style = _names(tt)
        tt.close()
    except Exception as e:
        res.skipped = f"unreadable ({type(e).__name__})"
        return res
    wanted = {}
    for script, (core, extra) in chars.items():
        have = [c for c in list(core) + list(extra) if ord(c) in cmap]
        if not have:
            continue
        core_have = sum(ord(c) in cmap for c in core)
        if core and core_have < MIN_CORE_COVERAGE * len(core):
            drop["uncovered"] = drop.get("uncovered", 0) + len(have)
            continue
        glyph_count: Dict[str, int] = {}
        for c in have:
            glyph_count[cmap[ord(c)]] = glyph_count.get(cmap[ord(c)], 0) + 1
        kept = [c for c in have if glyph_count[cmap[ord(c)]] == 1 and cmap[ord(c)] != ".notdef"]
        drop["shared_glyph"] = drop.get("shared_glyph", 0) + len(have) - len(kept)
        if kept:
            wanted[script] = kept
    if not wanted:
        res.skipped = res.skipped or "draws no script"
        return res
    try:
        font = ImageFont.truetype(path, render_px, index=index, layout_engine=ImageFont.Layout.BASIC)
    except Exception as e:
        res.skipped = f"Pillow cannot open it ({type(e).__name__})"
        return res
    notdef_raw = draw(font, _NOTDEF_PROBE)
    notdef = normalize(notdef_raw, size) if notdef_raw is not None else None
    for script, kept in wanted.items():
        imgs, names = [], []
        for c in kept:
            raw = draw(font, c)
            img = normalize(raw, size) if raw is not None else None
            if img is None:
                drop["empty"] = drop.get("empty", 0) + 1
                continue
            if notdef is not None and np.abs(img.astype(np.int16) - notdef).max() <= 8:
                drop["missing_box"] = drop.get("missing_box", 0) + 1
                continue
            imgs.append(img)
            names.append(c)
        if not imgs:
            continue
        digests = [hashlib.sha1((im >> 5).tobytes()).hexdigest() for im in imgs]
        counts: Dict[str, int] = {}
        for d in digests:
            counts[d] = counts.get(d, 0) + 1
        keep = [i for i, d in enumerate(digests) if counts[d] < 3]
        drop["placeholder"] = drop.get("placeholder", 0) + len(imgs) - len(keep)
        if keep:
            res.units[script] = ([names[i] for i in keep], np.stack([imgs[i] for i in keep]))
    return res


def render_face_star(args) -> FaceResult:
    return render_face(*args)


def face_meta(args) -> Tuple[str, str]:
    """(family, style) of the face ``(path, index)``; empty strings when unreadable."""
    from fontTools.ttLib import TTFont

    path, index = args
    try:
        with TTFont(path, fontNumber=index, lazy=True) as tt:
            return _names(tt)
    except Exception:
        return "", ""
