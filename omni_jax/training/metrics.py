"""Metrics: a JSONL log in the work directory, and confidence intervals."""
from __future__ import annotations

import json
import math
from pathlib import Path
import sys
from typing import Callable, List, Mapping, Optional, Tuple

import numpy as np

from omni_jax import files


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
    resumed run does not log the replayed steps twice. Damaged lines (cut by a
    crash, overwritten) are reported, never dropped silently: the file is kept
    beside as ``metrics.jsonl.damaged`` and written again without them.
    """

    def __init__(self, path: str | Path, warn: Optional[Callable[[str], None]] = None):
        self.path = Path(path)
        self.warn = warn or (lambda msg: print(f"omni-jax: warning: {msg}", file=sys.stderr, flush=True))
        files.ensure_dir(self.path.parent)
        files.check_file_slot(self.path)

    def write(self, step: int, metrics: Mapping, **extra) -> None:
        record = {"step": int(step), **{k: _to_python(v) for k, v in metrics.items()}, **extra}
        files.append_text(self.path, json.dumps(record) + "\n")

    def read_lines(self) -> Tuple[List[dict], List[int]]:
        """The records, and the numbers (from 1) of the lines that are not JSON objects."""
        if not self.path.exists() and not self.path.is_symlink():
            return [], []
        out, damaged = [], []
        for n, line in enumerate(files.read_bytes(self.path).split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except ValueError:
                record = None
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                out.append(record)
            else:
                damaged.append(n)
        return out, damaged

    def read(self) -> list[dict]:
        """The records (damaged lines are left out and reported)."""
        records, damaged = self.read_lines()
        if damaged:
            self.warn(self._damage_note(damaged))
        return records

    def _damage_note(self, damaged: List[int]) -> str:
        shown = ", ".join(map(str, damaged[:5])) + (" ..." if len(damaged) > 5 else "")
        return f"{self.path}: {len(damaged)} damaged line(s) (line {shown}) are not metrics records"

    def truncate_after(self, step: Optional[int]) -> None:
        if not self.path.exists() and not self.path.is_symlink():
            return
        records, damaged = self.read_lines()
        keep = [r for r in records if step is not None and r["step"] <= step]
        if damaged:
            kept = files.move_aside(self.path, "damaged")
            self.warn(f"{self._damage_note(damaged)}; kept the file as {kept} and wrote {self.path.name} again "
                      "without them")
        elif len(keep) == len(records):
            return
        files.write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in keep))
