"""Orbax checkpoints, written atomically, guarded by the config they belong to.

Orbax writes each step into a temporary directory and renames it when it is
complete, so an interrupted save never leaves a half checkpoint that looks
finished. Beside the steps, ``config.json`` records the config fields the
checkpoint depends on; resuming under a config that differs in any of them is
an error that names the fields, and nothing is overwritten.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

from omni_jax import config as config_lib
from omni_jax.errors import OmniJaxError


def write_atomic(path: str | Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class CheckpointStore:
    """Checkpoints of one training run in ``directory``.

    Args:
      directory: where the steps and ``config.json`` live.
      fingerprint: a JSON-able dict of what the checkpoint depends on (for
        example ``config.select(cfg, ["model", "train", "data"])``).
      max_to_keep: how many step checkpoints are kept.
    """

    def __init__(self, directory: str | Path, fingerprint: dict, max_to_keep: int = 2):
        self.directory = Path(directory).resolve()
        self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=list))
        self._check_compatible()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    @classmethod
    def peek(cls, directory: str | Path, fingerprint: dict) -> Optional[int]:
        """The latest step in ``directory`` after checking its config against ``fingerprint``
        (an :class:`OmniJaxError` if it differs); creates nothing when there is no checkpoint."""
        if not Path(directory).exists():
            return None
        store = cls(directory, fingerprint)
        try:
            return store.latest_step()
        finally:
            store.close()

    @property
    def config_path(self) -> Path:
        return self.directory / "config.json"

    def _check_compatible(self) -> None:
        path = self.config_path
        if not path.exists():
            return
        try:
            old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise OmniJaxError(f"checkpoint config {path} is unreadable ({e}); move the work directory aside")
        changed = config_lib.diff(old, self.fingerprint)
        if changed:
            raise OmniJaxError(
                f"work directory {self.directory} holds a checkpoint from an incompatible config: "
                f"{'; '.join(changed[:4])}{' ...' if len(changed) > 4 else ''}. "
                "Use another --workdir or the same config")

    def latest_step(self) -> Optional[int]:
        return self._manager.latest_step()

    def restore(self, target: Any, step: Optional[int] = None) -> Any:
        """Restores ``step`` (default: latest) into the structure of ``target``."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise OmniJaxError(f"no checkpoint in {self.directory}")
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
        try:
            return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as e:  # orbax raises many kinds; all mean the same to the user
            msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
            raise OmniJaxError(
                f"checkpoint {self.directory / str(step)} is corrupted or does not match this model "
                f"({type(e).__name__}: {msg}); move it aside to start over") from None

    def save(self, step: int, state: Any) -> None:
        if not self.config_path.exists():
            write_atomic(self.config_path, json.dumps(self.fingerprint, indent=1, sort_keys=True))
        self._manager.save(step, args=ocp.args.StandardSave(state))
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()
