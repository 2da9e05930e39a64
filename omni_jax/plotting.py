"""What every figure of the project shares: one style per method, figures without pyplot, atomic saves.

* ``STYLES``: method name -> :class:`Style` (colour, line style, marker, display label) for the
  methods of all three experiments (sinusoid, RL, classification). A method has the same colour
  in every figure, and no two methods share a colour. The Omni heads of the sinusoid and RL
  experiments (``omni_joint``, ...) are methods of their own: dashed lines.
* ``HEAD_STYLES``: classification head name -> (marker, label); a classification figure that
  shows several heads of one method keeps the method's colour and tells the heads by marker.
* :func:`new_figure` builds a :class:`matplotlib.figure.Figure` directly: no pyplot, no backend is
  selected or changed, so importing or using this module leaves a notebook's backend alone.
* :func:`save_figure` writes the image to a temporary file beside ``path`` and renames it into place.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
from matplotlib.figure import Figure

from omni_jax import files
from omni_jax.errors import OmniJaxError


@dataclass(frozen=True)
class Style:
    color: str
    linestyle: str
    marker: str
    label: str

    def line_kwargs(self) -> dict:
        """Keyword arguments of ``Axes.plot`` for this style."""
        return {"color": self.color, "linestyle": self.linestyle, "marker": self.marker, "label": self.label}


STYLES = {
    # plain methods: solid (Ensemble and Joint-Training dotted)
    "baseline": Style("#1f77b4", "-", "o", "Baseline"),
    "maml": Style("#ff7f0e", "-", "s", "MAML"),
    "protonet": Style("#2ca02c", "-", "v", "ProtoNet"),
    "ensemble": Style("#9467bd", ":", "D", "Ensemble"),
    "joint": Style("#8c564b", ":", "P", "Joint-Training"),
    "random": Style("#000000", ":", "x", "Random (untrained) policy"),
    # Omni-Training: reds, solid
    "omni": Style("#d62728", "-", "o", "Omni"),
    "omni_proto": Style("#a50f15", "-", "o", "Omni-Proto"),
    "omni_maml": Style("#ff9896", "-", "s", "Omni-MAML"),
    # single heads of an Omni-Net (sinusoid, RL): dashed
    "omni_joint": Style("#e377c2", "--", "^", "Omni (joint head)"),
    "omni_pre": Style("#17becf", "--", "v", "Omni (pre head)"),
    "omni_meta": Style("#bcbd22", "--", "<", "Omni (meta head)"),
    "omni_ensemble": Style("#7f7f7f", "--", "D", "Omni (ensemble of heads)"),
}

HEAD_STYLES = {"joint": ("o", "joint head"), "pre": ("s", "pre head"), "meta": ("^", "meta head"),
               "ensemble": ("D", "ensemble of heads")}

# Methods not in STYLES get one of these, chosen by a stable hash of the name (same name, same colour).
_FALLBACK_COLORS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#31a354", "#756bb1")


def style(method: str, head: Optional[str] = None) -> Style:
    """The style of ``method``; with ``head`` (a classification head), the head's marker and a
    label naming both. Unknown methods get a deterministic fallback colour and their name as label."""
    s = STYLES.get(method)
    if s is None:
        s = Style(_FALLBACK_COLORS[zlib.crc32(method.encode()) % len(_FALLBACK_COLORS)], "-", "o", method)
    if head is not None:
        marker, head_label = HEAD_STYLES.get(head, (s.marker, head))
        s = Style(s.color, s.linestyle, marker, f"{s.label} ({head_label})")
    return s


def new_figure(nrows: int = 1, ncols: int = 1, *, panel_size: Tuple[float, float] = (4.2, 3.6),
               extra_width: float = 0.0, sharey: bool = False) -> Tuple[Figure, np.ndarray]:
    """A figure of ``nrows`` x ``ncols`` panels (each ``panel_size`` inches, plus ``extra_width``
    inches in all) and its axes as a 2-D array, built without pyplot or any backend selection."""
    w, h = panel_size
    fig = Figure(figsize=(extra_width + w * ncols, h * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey)
    return fig, axes


def save_figure(fig: Figure, path, *, dpi: int = 120) -> Path:
    """Saves ``fig`` to ``path`` atomically: the image goes to a temporary file in the same directory,
    which then replaces ``path``, so a reader never sees a half-written image. The format comes from
    the suffix of ``path`` (``.png``, ``.pdf``, ``.svg``, ...). Returns ``path`` as a :class:`Path`."""
    path = Path(path)
    fmt = path.suffix[1:].lower() or "png"
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:     # before anything is written: a clear error, not a failed write
        raise OmniJaxError(f"cannot write the figure {path}: the format {fmt!r} of its suffix is not one "
                           f"matplotlib writes ({', '.join(sorted(supported))})")
    with files.atomic_path(path) as tmp:       # the usual permissions, flushed, renamed into place
        with files.guarded(path, "write the figure"):
            with open(tmp, "wb") as f:
                fig.savefig(f, format=fmt, dpi=dpi)
    return path
