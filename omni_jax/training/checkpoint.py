"""Orbax checkpoints, written atomically, checked before they are trusted, guarded by their config.

Orbax writes each step into a temporary directory and renames it when it is
complete, so an interrupted save never leaves a half checkpoint that looks
finished. After each save, ``<step>/omni_jax_files.json`` records the size
and SHA-256 of every file of the step and the config fingerprint it belongs
to; before a step is restored its files are checked against that list. A
damaged step (a file emptied, cut, overwritten, replaced or deleted) is moved
aside to ``checkpoints.damaged/`` with a warning, and training resumes from
the newest intact step, so the run ends with the same numbers. When no step
is intact, or a file cannot be read at all (permissions), the run stops with
a one-line error and moves nothing.

Beside the steps, ``config.json`` records the config fields the checkpoint
depends on; resuming under a config that differs in any of them is an error
that names the fields, and nothing is overwritten.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Tuple

import jax
import orbax.checkpoint as ocp

from omni_jax import config as config_lib
from omni_jax import files
from omni_jax.errors import OmniJaxError
from omni_jax.files import write_atomic  # noqa: F401  (kept importable from here)

MANIFEST = "omni_jax_files.json"
DAMAGED = "checkpoints.damaged"


@contextlib.contextmanager
def _quiet_orbax():
    """Orbax logs (through absl) every unparsable metadata file it meets while listing steps; the
    store reports damage itself, in one line, so those logs are silenced while it looks."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _warn(msg: str) -> None:
    print(f"omni-jax: warning: {msg}", file=sys.stderr, flush=True)


def _first_line(e: BaseException) -> str:
    text = str(e).splitlines()[0][:300] if str(e) else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class CheckpointStore:
    """Checkpoints of one training run in ``directory``.

    Args:
      directory: where the steps and ``config.json`` live.
      fingerprint: a JSON-able dict of what the checkpoint depends on (for
        example ``config.select(cfg, ["model", "train", "data"])``).
      max_to_keep: how many step checkpoints are kept.
      warn: where the warnings about damaged steps go (default: stderr).
    """

    def __init__(self, directory: str | Path, fingerprint: dict, max_to_keep: int = 2,
                 warn: Optional[Callable[[str], None]] = None):
        self.directory = Path(directory).absolute()
        self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=list))
        self.warn = warn or _warn
        self._check_compatible()
        files.ensure_dir(self.directory, "checkpoint directory")
        self._max_to_keep = max_to_keep
        self._open_manager()

    def _open_manager(self) -> None:
        with _quiet_orbax(), self._orbax_errors("open the checkpoints in"):
            self._manager = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(max_to_keep=self._max_to_keep, create=True),
            )

    @contextlib.contextmanager
    def _orbax_errors(self, action: str, path: Optional[Path] = None):
        """Orbax raises many kinds of errors; each becomes one line naming the place."""
        try:
            yield
        except OmniJaxError:
            raise
        except Exception as e:  # noqa: BLE001 (orbax and tensorstore raise anything)
            where = path or self.directory
            if files.os_error_in(e) is not None:   # a full disk, a quota, a read-only file system, ...
                raise files.error(where, action, e, "fix it and run again") from None
            raise OmniJaxError(f"cannot {action} {where} ({_first_line(e)}); move it aside to start "
                               "over") from None

    @classmethod
    def peek(cls, directory: str | Path, fingerprint: dict) -> Optional[int]:
        """The latest step in ``directory`` after checking its config against ``fingerprint``
        (an :class:`OmniJaxError` if it differs); creates nothing when there is no checkpoint.
        The step's files are not checked here (that happens when it is restored)."""
        directory = Path(directory)
        if not directory.exists() and not directory.is_symlink():
            if directory.parent.exists() and not directory.parent.is_dir():
                files.ensure_dir(directory, "checkpoint directory")   # raises, naming the file in the way
            return None
        store = cls(directory, fingerprint)
        try:
            return store.latest_step()
        finally:
            store.close()

    @property
    def config_path(self) -> Path:
        return self.directory / "config.json"

    def _step_dir(self, step: int) -> Path:
        return self.directory / str(step)

    def _check_compatible(self) -> None:
        path = self.config_path
        self._rewrite_config = False
        old = None
        if path.exists() or path.is_symlink():
            try:
                old = files.read_json(path, expect=dict, hint="delete it to have it written again from the "
                                                              "checkpoints' own records, or use another --workdir")
            except OmniJaxError as e:
                if path.is_dir() or not path.is_file():
                    raise
                old = self._fingerprint_from_steps()   # the same fingerprint is recorded with every step
                if old is None:
                    raise
                self.warn(f"{e.args[0].split(';')[0]}; checked the checkpoints against the config recorded with "
                          "them instead (it is written again at the next checkpoint)")
                self._rewrite_config = True
        else:
            old = self._fingerprint_from_steps()
            self._rewrite_config = True
        if old is None:
            return
        new = self.fingerprint
        if "parameters" not in old or "parameters" not in new:
            # a checkpoint from before the model's shapes were recorded (it gets them at its next
            # save), or a look at the config alone (CheckpointStore.peek, before the model is built)
            self._rewrite_config = self._rewrite_config or "parameters" not in old
            old, new = ({k: v for k, v in d.items() if k != "parameters"} for d in (old, new))
        changed = config_lib.diff(old, new)
        model = [c[len("parameters."):] for c in changed if c.startswith("parameters.")]
        if changed and len(model) == len(changed):
            shown = "; ".join(model[:3]) + (f" and {len(model) - 3} more" if len(model) > 3 else "")
            raise OmniJaxError(
                f"{self.directory} holds the checkpoints of another model under the same config (parameters "
                f"{shown}); a network changed in code cannot resume them: move the folder aside or use another "
                "--workdir")
        if changed:
            more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
            raise OmniJaxError(
                f"{self.directory} holds the checkpoints of an incompatible config ({'; '.join(changed[:3])}{more}); "
                "use another --workdir or the same config")

    def _fingerprint_from_steps(self) -> Optional[dict]:
        """The fingerprint recorded with the newest step that has a readable record (``config.json``
        was deleted)."""
        if not self.directory.is_dir():
            return None
        with files.guarded(self.directory, "list the checkpoints in", "fix its permissions and run again"):
            steps = sorted((int(p.name) for p in self.directory.iterdir() if p.name.isdigit()), reverse=True)
        for step in steps:
            try:
                record = json.loads((self._step_dir(step) / MANIFEST).read_bytes())
                return record["fingerprint"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return None

    def latest_step(self) -> Optional[int]:
        with _quiet_orbax():
            return self._manager.latest_step()

    def all_steps(self) -> list:
        with _quiet_orbax():
            return sorted(self._manager.all_steps())

    # ------------------------------------------------------------------ checking a step

    def verify(self, step: int) -> Optional[str]:
        """Why ``step`` is damaged, or ``None`` if its files are those that were saved (or it has no
        record of them, as in work directories from before the records). A file that cannot be read
        for another reason than damage (permissions, I/O) is an :class:`OmniJaxError`."""
        d = self._step_dir(step)
        if not d.is_dir():
            return f"{d} is not a directory"
        record_path = d / MANIFEST
        if not record_path.exists() and not record_path.is_symlink():
            return None
        try:
            record = json.loads(record_path.read_bytes())
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM, errno.EIO):
                raise files.error(record_path, "read", e, "fix its permissions and run again") from None
            return f"its record {record_path.name}: {files.reason(e)}"
        except ValueError:
            return f"its record {record_path.name} is damaged"
        listed = record.get("files") if isinstance(record, dict) else None
        if not isinstance(listed, dict) or not all(
                isinstance(v, list) and len(v) == 2 and isinstance(v[0], int) and isinstance(v[1], str)
                for v in listed.values()):
            return f"its record {record_path.name} is damaged"
        for rel, (size, sha) in sorted(listed.items()):
            p = d / rel
            if not p.is_file():
                return f"{p} is {'a directory' if p.is_dir() else 'missing'}"
            if p.stat().st_size != size:
                return f"{p} has {p.stat().st_size} bytes, not the {size} that were saved"
            if files.digest(p) != sha:      # a file that cannot be read at all is an error, not damage
                return f"{p} does not hold the bytes that were saved"
        return None

    def restore_latest(self, target: Any) -> Tuple[Optional[int], Any]:
        """Restores the newest intact step into the structure of ``target``: ``(step, state)``, or
        ``(None, target)`` when there is no checkpoint. Damaged newer steps are moved aside to
        ``checkpoints.damaged/`` with a warning; when no step is intact it is an error and nothing
        is moved."""
        with _quiet_orbax(), self._orbax_errors("list the checkpoints in"):
            self._manager.reload()
        with files.guarded(self.directory, "list the checkpoints in", "fix its permissions and run again"):
            in_the_way = [p for p in self.directory.iterdir() if p.name.isdigit() and not p.is_dir()]
        steps = sorted(self.all_steps(), reverse=True)
        damaged = []
        for step in steps:
            problem = self.verify(step)
            if problem is None:
                try:
                    state = self.restore(target, step)
                except OmniJaxError as e:
                    problem = str(e)
                    # a failed restore can leave orbax's manager unable to restore intact steps
                    # (an emptied step directory makes it expect other items): start a fresh one
                    with _quiet_orbax():
                        self._manager.close()
                    self._open_manager()
                else:
                    self._set_aside(damaged, in_the_way)
                    return step, state
            damaged.append((self._step_dir(step), problem))
        if damaged:
            path, problem = damaged[0]
            raise OmniJaxError(f"every checkpoint in {self.directory} is damaged ({path.name}: {problem}); "
                               f"move {self.directory} aside to train from the start")
        self._set_aside([], in_the_way)
        return None, target

    def _set_aside(self, damaged, in_the_way) -> None:
        if (not damaged and not in_the_way) or jax.process_index() != 0:   # process 0 moves, for all
            return
        aside = files.ensure_dir(self.directory.parent / DAMAGED)
        for path, problem in damaged:
            moved = self._move(path, aside)
            self.warn(f"checkpoint {path} is damaged ({problem}); moved it to {moved} and resuming from an "
                      "earlier step")
        for path in in_the_way:
            moved = self._move(path, aside)
            self.warn(f"{path} is not a checkpoint directory; moved it to {moved}")
        with _quiet_orbax(), self._orbax_errors("list the checkpoints in"):
            self._manager.reload()

    @staticmethod
    def _move(path: Path, aside: Path) -> Path:
        target = aside / path.name
        n = 2
        while target.exists() or target.is_symlink():
            target = aside / f"{path.name}.{n}"
            n += 1
        with files.guarded(path, "move aside", "move it aside by hand and run again"):
            path.rename(target)
        return target

    def restore(self, target: Any, step: Optional[int] = None) -> Any:
        """Restores ``step`` (default: latest) into the structure of ``target`` (no fallback to an
        earlier step). A target with a ``legacy_layouts()`` method (``[(old_target, convert)]``, see
        :meth:`omni_jax.training.loop.TrainState.legacy_layouts`) also restores the layouts it had
        on disk before, converted."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise OmniJaxError(f"no checkpoint in {self.directory}")
        try:
            return self._restore_as(target, step)
        except Exception as e:  # orbax raises many kinds; all mean the same to the user
            error = e
        # a checkpoint written before the state's type changed: its earlier layouts, if it has any
        layouts = target.legacy_layouts() if callable(getattr(target, "legacy_layouts", None)) else []
        for old_target, convert in layouts:
            try:
                return convert(self._restore_as(old_target, step))
            except Exception:  # not this layout either
                continue
        raise OmniJaxError(
            f"checkpoint {self._step_dir(step)} is corrupted or does not match this model "
            f"({_first_line(error)}); move it aside to start over") from None

    def _restore_as(self, target: Any, step: int) -> Any:
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
        with _quiet_orbax():
            return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    # ------------------------------------------------------------------ saving

    def save(self, step: int, state: Any) -> None:
        primary = jax.process_index() == 0
        if primary and (self._rewrite_config or not (self.config_path.exists() or self.config_path.is_symlink())):
            self._rewrite_config = False
            files.write_atomic(self.config_path, json.dumps(self.fingerprint, indent=1, sort_keys=True))
        self._check_space(step, state)
        try:
            with _quiet_orbax(), self._orbax_errors(f"write checkpoint step {step} to", self._step_dir(step)):
                self._manager.save(step, args=ocp.args.StandardSave(state))
                self._manager.wait_until_finished()
        except OmniJaxError:
            self._remove_partial(step)   # the half-written step (on a full disk, its space back)
            raise
        if primary:
            self._write_record(step)

    def _check_space(self, step: int, state: Any) -> None:
        """A step that cannot fit on the device is refused before orbax starts writing it (orbax's
        writer threads fail noisily, one traceback each, when the disk fills under them)."""
        need = int(1.05 * sum(int(getattr(x, "nbytes", 0)) for x in jax.tree_util.tree_leaves(state))) + (64 << 10)
        try:
            st = os.statvfs(self.directory)
        except (OSError, AttributeError):
            return
        free = st.f_bavail * st.f_frsize
        if need > free:
            raise OmniJaxError(f"cannot write checkpoint step {step} to {self._step_dir(step)}: it needs about "
                               f"{need / 1e6:.1f} MB and the device has {free / 1e6:.1f} MB free (the disk is full); "
                               "free some space (or use another directory) and run again; what was written before "
                               "is intact")

    def _remove_partial(self, step: int) -> None:
        """Removes what a failed save of ``step`` left: orbax's temporary folder for it (never a
        finished step: those are renamed into place only when complete)."""
        if jax.process_index() != 0:
            return
        with contextlib.suppress(OSError):
            for p in self.directory.glob(f"{step}.orbax-checkpoint-tmp*"):
                shutil.rmtree(p, ignore_errors=True)

    def _write_record(self, step: int) -> None:
        d = self._step_dir(step)
        listed = {}
        with files.guarded(d, "list the files of"):
            paths = sorted(p for p in d.rglob("*") if p.is_file() and p.name != MANIFEST)
            for p in paths:
                listed[str(p.relative_to(d))] = [p.stat().st_size, files.digest(p)]
        files.write_json(d / MANIFEST, {"step": step, "fingerprint": self.fingerprint, "files": listed})

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._manager.close()
