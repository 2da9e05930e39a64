"""The training loop shared by every experiment.

Every experiment's training step has one signature, ``step(state, data) ->
(state, metrics)``: pure, with tasks sampled inside jit from the state's PRNG
key, and ``data`` whatever stays fixed over the run (a training set on the
device, or ``None``). :class:`Chunk` runs ``chunk_size`` of them per call;
:func:`train_loop` only calls the chunk, runs the host-side hook
(validation, model selection), logs, checkpoints and resumes. A run
restarted after an interruption restores the last checkpoint and replays
exactly the same steps, so it ends with the same numbers.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional, Tuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from omni_jax.errors import OmniJaxError
from omni_jax.training.checkpoint import CheckpointStore
from omni_jax.training.metrics import MetricsWriter


@flax.struct.dataclass
class TrainState:
    """Everything a training run needs to continue: a pytree, checkpointed whole.

    Attributes:
      step: the number of training steps taken.
      params: the model's parameters (``{"params": ...}`` or the bare tree, as the model takes them).
      opt_state: the optimizer's state (with the EMA teacher, :func:`omni_jax.omni.omni_optimizer`).
      rng: a raw ``uint32[2]`` PRNG key (checkpointable).
      batch_stats: BatchNorm's running statistics, for models that have them (else ``None``).
      best: the best-so-far record of model selection on validation tasks
        (:class:`omni_jax.training.selection.Best`), for runs that select (else ``None``).
    """

    step: jnp.ndarray
    params: Any
    opt_state: Any
    rng: jnp.ndarray
    batch_stats: Any = None
    best: Any = None

    def legacy_layouts(self):
        """``[(old_target, convert)]``: the layouts this state had on disk before it was typed
        (one untyped ``extra`` field), for restoring checkpoints written then
        (:meth:`omni_jax.training.checkpoint.CheckpointStore.restore`): ``old_target`` has the old
        structure, ``convert(restored)`` makes this type of it. Only the layouts the experiments
        wrote are known: nothing (sinusoid, RL without selection), RL's selection, and
        classification's BatchNorm statistics with its selection."""
        base = {"step": self.step, "params": self.params, "opt_state": self.opt_state, "rng": self.rng}

        def state_of(d, batch_stats=None, best=None):
            return TrainState(step=d["step"], params=d["params"], opt_state=d["opt_state"], rng=d["rng"],
                              batch_stats=batch_stats, best=best)

        if self.batch_stats is None and self.best is None:
            return [(dict(base, extra=None), state_of)]
        b = self.best
        if self.batch_stats is None and b is not None and b.batch_stats is None:
            old = {"best_params": b.params, "best_return": b.score, "best_step": b.step}
            return [(dict(base, extra=old), lambda d: state_of(d, best=type(b)(
                params=d["extra"]["best_params"], batch_stats=None, score=d["extra"]["best_return"],
                step=d["extra"]["best_step"])))]
        if self.batch_stats is not None and b is not None:
            old = {"batch_stats": self.batch_stats, "best_params": b.params, "best_batch_stats": b.batch_stats,
                   "best_val": b.score, "best_step": b.step}
            return [(dict(base, extra=old), lambda d: state_of(d, batch_stats=d["extra"]["batch_stats"], best=type(b)(
                params=d["extra"]["best_params"], batch_stats=d["extra"]["best_batch_stats"],
                score=d["extra"]["best_val"], step=d["extra"]["best_step"])))]
        return []


Step = Callable[[TrainState, Any], Tuple[TrainState, Mapping]]


FIRST_STEP_LOSS = "loss/first_step"


def _chunk_metrics(stacked: Mapping) -> dict:
    """A chunk's metrics from its steps' (stacked on axis 0): the means, and the total loss of its
    first step (``loss/first_step``: for the first chunk, the loss before any update, the start a
    divergence is measured from, :func:`omni_jax.training.results.divergence`)."""
    out = {k: jnp.mean(v, axis=0) for k, v in stacked.items()}
    if "loss/total" in stacked:
        out[FIRST_STEP_LOSS] = stacked["loss/total"][0]
    return out


def scan_steps(step_fn: Step, chunk_size: int):
    """Turns ``step(state, data)`` into a ``chunk_size``-step function (one ``lax.scan``)
    whose metrics are the means over the chunk (and the first step's total loss)."""

    def chunk(state, data):
        state, metrics = jax.lax.scan(lambda s, _: step_fn(s, data), state, None, length=chunk_size)
        return state, _chunk_metrics(metrics)

    return chunk


class Chunk:
    """``chunk_size`` training steps per call: ``chunk(state, data) -> (state, mean metrics)``.

    With ``scan=True`` the steps are one jitted ``lax.scan``. With
    ``scan=False`` one jitted step is dispatched ``chunk_size`` times from
    Python (asynchronously, so the host never waits between steps): on
    XLA:CPU a convolutional step inside a scan's while loop runs far slower
    than the same step jitted alone (docs/benchmarks.md). :meth:`compile` compiles ahead of time (XLA releases the GIL,
    so it can run in a worker thread); the later calls find the executable.
    Each instance owns its jitted function: nothing is cached per process.
    """

    def __init__(self, step_fn: Step, chunk_size: int, *, scan: bool = True):
        self.chunk_size, self.scan = chunk_size, scan
        self._fn = jax.jit(scan_steps(step_fn, chunk_size) if scan else step_fn)

    def compile(self, state: TrainState, data: Any = None) -> None:
        self.lowered(state, data).compile()

    def lowered(self, state: TrainState, data: Any = None):
        """The chunk lowered for these arguments (``jax.stages.Lowered``: its ``compile()``'s
        ``cost_analysis()`` gives the flops and bytes of a chunk)."""
        return self._fn.lower(state, data)

    def __call__(self, state: TrainState, data: Any = None):
        if self.scan:
            return self._fn(state, data)
        ms = []
        for _ in range(self.chunk_size):
            state, m = self._fn(state, data)
            ms.append(m)
        return state, _chunk_metrics({k: jnp.stack([m[k] for m in ms]) for k in ms[0]})


@dataclasses.dataclass(frozen=True)
class Hook:
    """A host-side function run during training: ``fn(state) -> (state, metrics)``.

    :func:`train_loop` runs it after the chunk that reaches each multiple of
    ``every`` steps and after the last one, before that step is checkpointed;
    its metrics are logged with the chunk's. It may return a new state, for
    example one whose ``extra`` records the best parameters so far
    (validation-based model selection), so the selection is checkpointed and
    resumes exactly. It must be deterministic in the state.
    """

    fn: Callable[[TrainState], Tuple[TrainState, Mapping]]
    every: int


def train_loop(state: TrainState, chunk_fn: Callable, *, total_steps: int, chunk_size: int, data: Any = None,
               store: Optional[CheckpointStore] = None, metrics: Optional[MetricsWriter] = None,
               ckpt_every: Optional[int] = None, desc: str = "train",
               progress_fn: Optional[Callable[[int, Mapping], None]] = None,
               hook: Optional[Hook] = None, show_progress: bool = True,
               stop_after: Optional[int] = None) -> TrainState:
    """Runs ``chunk_fn(state, data)`` until ``state.step == total_steps``, resuming from ``store``.

    Args:
      chunk_fn: advances the state by ``chunk_size`` steps (a :class:`Chunk`).
      data: passed to every call of ``chunk_fn``.
      ckpt_every: checkpoint period in steps (a multiple of ``chunk_size``);
        the final step is always checkpointed.
      progress_fn: called as ``progress_fn(step, metrics)`` after each chunk.
      hook: a host-side :class:`Hook` (validation, model selection); its
        period must be a multiple of ``chunk_size``.
      stop_after: stop (as if interrupted) once this step is reached; for tests.
    """
    if total_steps % chunk_size:
        raise OmniJaxError(f"the number of steps ({total_steps}) must be a multiple of the chunk size ({chunk_size})")
    ckpt_every = ckpt_every or total_steps
    if ckpt_every % chunk_size:
        raise OmniJaxError(f"the checkpoint period ({ckpt_every}) must be a multiple of the chunk size ({chunk_size})")
    if hook is not None and (not hook.every or hook.every % chunk_size):
        raise OmniJaxError(f"the hook's period ({hook.every}) must be a positive multiple of the chunk size ({chunk_size})")
    start = 0
    if store is not None:
        restored, state = store.restore_latest(state)   # the newest intact step; damaged ones set aside
        start = restored or 0
        if restored is not None and int(state.step) != start:
            raise OmniJaxError(f"checkpoint {store.directory / str(start)} holds step {int(state.step)}, not {start}")
    if metrics is not None:
        metrics.truncate_after(start)
    if start >= total_steps:
        return state
    bar = tqdm(total=total_steps, initial=start, desc=desc, disable=not show_progress,
               dynamic_ncols=True, leave=True)
    step = start
    try:
        while step < total_steps:
            state, m = chunk_fn(state, data)
            step += chunk_size
            m = dict(jax.device_get(m))
            if hook is not None and (step % hook.every == 0 or step == total_steps):
                state, hm = hook.fn(state)
                m.update(jax.device_get(hm))
            if metrics is not None:
                metrics.write(step, m)
            if progress_fn is not None:
                progress_fn(step, m)
            loss = m.get("loss/total")
            if loss is not None:
                bar.set_postfix(loss=f"{float(np.asarray(loss)):.4g}", refresh=False)
            bar.update(chunk_size)
            if store is not None and (step % ckpt_every == 0 or step == total_steps):
                store.save(step, state)
            if stop_after is not None and step >= stop_after:
                break
    except BaseException:
        bar.leave = False   # the error's one line, not under a half-drawn progress bar
        raise
    finally:
        bar.close()
    return state
