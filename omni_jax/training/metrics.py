"""Metrics: a JSONL log in the work directory, and confidence intervals."""
from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
import sys
import time
from typing import Callable, List, Mapping, Optional, Tuple, Union

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
    if math.isfinite(mean) and abs(mean) >= 10 ** (significant + 2):   # a diverged run: keep the cell short
        return f"{mean:.{significant - 1}e}±{ci:.1e}"
    digits = int(math.floor(math.log10(abs(mean)))) + 1 if math.isfinite(mean) and abs(mean) >= 1 else 1
    decimals = max(0, significant - digits)
    return f"{mean:.{decimals}f}±{ci:.{decimals}f}"


def _to_python(v):
    a = np.asarray(v)
    return a.item() if a.ndim == 0 else a.tolist()


EVENT_FILE_GLOB = "events.out.tfevents.*"


def _scalar(v) -> Optional[float]:
    """The number TensorBoard shows for a metric value, or ``None`` for values it does not
    get: a number, a numpy or JAX scalar, or an array of one element gives its value (a bool
    0 or 1; NaN and infinities as they are); larger arrays, complex numbers, strings and
    ``None`` are left out of the event file (``metrics.jsonl`` has them)."""
    try:
        a = np.asarray(v)
        if a.size != 1 or a.dtype.kind in "OSUcMm":
            return None
        return float(a.reshape(()))
    except (TypeError, ValueError):
        return None


class MetricsWriter:
    """Appends one JSON object per line to ``path``, and the same scalars to TensorBoard.

    ``truncate_after(step)`` drops the records logged after a checkpoint, so a
    resumed run does not log the replayed steps twice. Damaged lines (cut by a
    crash, overwritten) are reported, never dropped silently: the file is kept
    beside as ``metrics.jsonl.damaged`` and written again without them.

    TensorBoard (``tensorboard=True``, the default; or a directory to write to): every
    ``write(step, metrics)`` also goes to an event file ``events.out.tfevents.*`` in the
    folder of ``path`` (a method's folder ``<workdir>/<method>/``, so ``tensorboard --logdir
    runs/`` shows the run as ``<experiment>/<method>``), as one TensorBoard scalar per metric:
    tag = the metric's name (``loss/total``, ``val/accuracy``, ...), step = ``step``. Scalars
    and one-element arrays are written (NaN and infinities too); larger arrays, strings and
    ``None`` stay in ``metrics.jsonl`` only. ``metrics.jsonl`` is the record that resuming
    reads; the event files follow it:

    * the event file is opened on the first ``write`` (a writer that writes nothing creates
      no file), each process's writer in a new file, and flushed to disk after each write,
      so a live ``tensorboard`` follows the curves and a killed run loses nothing that
      ``metrics.jsonl`` has;
    * each event file starts with a ``SessionLog.START`` event (as TensorFlow's supervisor wrote,
      and tensorboardX's ``SummaryWriter(purge_step=...)``), at the first step it holds or, after
      ``truncate_after(step)``, at ``step + 1``. TensorBoard takes a run's first START as the
      start of its session and each later one as a restart: it discards the events read before
      it (in the earlier files) with steps from there on, so after a resume each step shows once,
      with the values of the resumed run. (The data server of ``tensorboard`` ignores STARTs:
      for it the new file starts a little earlier and logs the last kept records again, see
      :func:`_restart`.) When the folder holds no event file yet (a run made before TensorBoard
      logging, or with it off), the records kept are written to a new one there and then, so
      the curves start at the beginning;
    * an error writing the event file (disk full, permissions, ...) is reported once, as one
      line through ``warn``, and TensorBoard logging stops for this writer; ``metrics.jsonl``
      goes on. (tensorboardX's ``SummaryWriter`` writes from a background thread, where such
      an error only prints a traceback and then blocks training when its queue is full; so
      its synchronous ``EventsWriter`` is used here, with its event protos.)
    """

    def __init__(self, path: str | Path, warn: Optional[Callable[[str], None]] = None,
                 tensorboard: Union[bool, str, Path] = True):
        self.path = Path(path)
        self.warn = warn or (lambda msg: print(f"omni-jax: warning: {msg}", file=sys.stderr, flush=True))
        files.ensure_dir(self.path.parent)
        files.check_file_slot(self.path)
        if isinstance(tensorboard, (str, os.PathLike)):
            self.event_dir: Optional[Path] = Path(tensorboard)
        else:
            self.event_dir = self.path.parent if tensorboard else None
        self._events = None             # tensorboardX EventsWriter, opened on the first write
        self._purge_step: Optional[int] = None

    @property
    def tensorboard(self) -> bool:
        """Whether scalars still go to TensorBoard (off if asked so or after a write error)."""
        return self.event_dir is not None

    @property
    def event_file(self) -> Optional[Path]:
        """The event file this writer writes (``None`` before its first write)."""
        name = getattr(self._events, "_file_name", None)
        return Path(name) if name is not None else None

    def write(self, step: int, metrics: Mapping, **extra) -> None:
        record = {"step": int(step), **{k: _to_python(v) for k, v in metrics.items()}, **extra}
        files.append_text(self.path, json.dumps(record) + "\n")
        if self.tensorboard:
            self._write_events([(int(step), {**metrics, **extra})])

    # ------------------------------------------------------------------ TensorBoard

    def _event_files(self) -> List[Path]:
        try:
            return sorted(self.event_dir.glob(EVENT_FILE_GLOB)) if self.event_dir.is_dir() else []
        except OSError:
            return []

    def _open_events(self, start: int):
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event, SessionLog
        from tensorboardX.record_writer import directory_check

        directory_check(str(self.event_dir))
        # tensorboardX names the file events.out.tfevents.<seconds>.<host><suffix>; the suffix
        # keeps two writers of one second apart, in the order they were opened (TensorBoard
        # reads a folder's event files in the order of their names, and a purge applies to the
        # files before it)
        suffix = f".{time.time_ns()}.{os.getpid()}"
        writer = EventsWriter(str(self.event_dir / "events"), suffix)
        try:
            writer.write_event(Event(step=start, wall_time=time.time(),
                                     session_log=SessionLog(status=SessionLog.START)))
            writer.flush()
        except BaseException:
            with contextlib.suppress(Exception):
                writer.close()
            raise
        return writer

    def _write_events(self, records) -> None:
        """Writes ``[(step, metrics), ...]`` as events; a failure turns TensorBoard off, with one warning."""
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary

        if not self.tensorboard:
            return
        try:
            if self._events is None:
                start = self._purge_step if self._purge_step is not None else records[0][0] if records else 0
                self._events = self._open_events(start)
            now = time.time()
            for step, metrics in records:
                values = [Summary.Value(tag=str(k), simple_value=x)
                          for k, x in ((k, _scalar(v)) for k, v in metrics.items()) if x is not None]
                if values:
                    self._events.write_event(Event(step=step, wall_time=now, summary=Summary(value=values)))
            self._events.flush()
        except Exception as e:  # noqa: BLE001 (TensorBoard is secondary: never stop training for it)
            where = self.event_file or self.event_dir
            self._close_events()
            self.event_dir = None
            self.warn(f"cannot write TensorBoard events to {where}: {files.reason(e)}; TensorBoard logging is "
                      f"off for the rest of this run ({self.path} is still written)")

    def _close_events(self) -> None:
        events, self._events = self._events, None
        if events is not None:
            with contextlib.suppress(Exception):
                events.close()

    def flush(self) -> None:
        """Nothing to do (every write is flushed); for the usual writer interface."""

    def close(self) -> None:
        """Closes the event file (a later ``write`` opens a new one)."""
        self._close_events()

    def __enter__(self) -> "MetricsWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self._close_events()
        except Exception:  # noqa: BLE001 (at interpreter exit; every write was flushed already)
            pass

    # ------------------------------------------------------------------ reading

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
        """Drops the records after ``step`` (all of them for ``None``), in ``metrics.jsonl`` and,
        through a purge event, in TensorBoard (see the class)."""
        had_events = self.tensorboard and bool(self._event_files())
        if self.tensorboard:
            self._close_events()                      # the events from here on go to a new file
            self._purge_step = (0 if step is None else int(step) + 1) if had_events else None
        records, damaged = self.read_lines() if self.path.exists() or self.path.is_symlink() else ([], [])
        keep = [r for r in records if step is not None and r["step"] <= step]
        if damaged:
            kept = files.move_aside(self.path, "damaged")
            self.warn(f"{self._damage_note(damaged)}; kept the file as {kept} and wrote {self.path.name} again "
                      "without them")
        if damaged or len(keep) != len(records):
            files.write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in keep))
        if not self.tensorboard:
            return
        as_events = lambda rs: [(r["step"], {k: v for k, v in r.items() if k != "step"}) for r in rs]
        if not had_events:
            if keep:                                  # the curves so far, from metrics.jsonl
                self._write_events(as_events(keep))
        elif len(keep) != len(records):               # purge now, even if nothing is written after
            self._purge_step, again = _restart(keep, [r for r in records if step is None or r["step"] > step],
                                                  self._purge_step)
            self._write_events(as_events(again))


def _restart(kept: List[dict], dropped: List[dict], after: int) -> Tuple[int, List[dict]]:
    """Where the event file of a resumed run starts its session, and the kept records it logs again.

    A START at ``after`` (the step after the checkpoint) purges the dropped steps in
    TensorBoard's Python readers; its data server (``--load_fast``, the default) ignores STARTs
    and drops a tag's points only when the tag is logged again at a step not after its last
    one. So the new file starts at the last step kept of the tags whose points were dropped
    (the earliest of them) and logs the kept records from there again: every reader then drops
    the points after it and shows the kept ones once. (A tag dropped without any point kept
    shows its old points in the data server until the resumed run logs it again.)"""
    tags = {k for r in dropped for k, v in r.items() if k != "step" and _scalar(v) is not None}
    last = {}
    for r in kept:
        for k, v in r.items():
            if k in tags and _scalar(v) is not None:
                last[k] = max(last.get(k, r["step"]), r["step"])
    start = min([after, *last.values()])
    return start, [r for r in kept if r["step"] >= start]
