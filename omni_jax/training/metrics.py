"""Metrics: a JSONL log in the work directory, and confidence intervals."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from omni_jax.training.checkpoint import write_atomic


def mean_ci95(values, axis: int = 0):
    """Mean and 95% confidence half-width, 1.96·std/√n (the paper's protocol)."""
    v = np.asarray(values, dtype=np.float64)
    n = v.shape[axis]
    mean = v.mean(axis=axis)
    std = v.std(axis=axis, ddof=1) if n > 1 else np.zeros_like(mean)
    return mean, 1.96 * std / math.sqrt(n)


def format_mean_ci(mean: float, ci: float, significant: int = 4) -> str:
    """``mean±ci`` for tables, with ``significant`` digits in the mean's integer part and
    decimals together (``4.398±0.845``, ``46.94±35.29``, ``-258.5±22.0``, ``-1082±123``)."""
    digits = int(math.floor(math.log10(abs(mean)))) + 1 if math.isfinite(mean) and abs(mean) >= 1 else 1
    decimals = max(0, significant - digits)
    return f"{mean:.{decimals}f}±{ci:.{decimals}f}"


def _to_python(v):
    a = np.asarray(v)
    return a.item() if a.ndim == 0 else a.tolist()


class MetricsWriter:
    """Appends one JSON object per line to ``path``.

    ``truncate_after(step)`` drops the records logged after a checkpoint, so a
    resumed run does not log the replayed steps twice.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, step: int, metrics: Mapping, **extra) -> None:
        record = {"step": int(step), **{k: _to_python(v) for k, v in metrics.items()}, **extra}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash
        return out

    def truncate_after(self, step: Optional[int]) -> None:
        if not self.path.exists():
            return
        keep = [r for r in self.read() if step is not None and r.get("step", 0) <= step]
        write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in keep))
