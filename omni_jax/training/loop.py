"""The training loop shared by every experiment.

Training is a pure, jitted ``chunk_fn(state) -> (state, metrics)`` that runs
``chunk_size`` steps with ``lax.scan`` (tasks are sampled inside jit from the
state's PRNG key); this loop only calls it, logs, checkpoints and resumes.
A run restarted after an interruption restores the last checkpoint and
replays exactly the same steps, so it ends with the same numbers.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

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
    """Everything a training run needs to continue: a pytree, checkpointed whole."""

    step: jnp.ndarray
    params: Any
    opt_state: Any
    rng: jnp.ndarray  # a raw uint32[2] key (checkpointable)
    extra: Any = None  # e.g. batch statistics


def scan_steps(step_fn: Callable[[TrainState], tuple[TrainState, Mapping]], chunk_size: int):
    """Turns a one-step function into a ``chunk_size``-step function whose
    metrics are the means over the chunk."""

    def chunk(state):
        state, metrics = jax.lax.scan(lambda s, _: step_fn(s), state, None, length=chunk_size)
        return state, jax.tree_util.tree_map(lambda m: jnp.mean(m, axis=0), metrics)

    return chunk


def train_loop(state: TrainState, chunk_fn: Callable, *, total_steps: int, chunk_size: int,
               store: Optional[CheckpointStore] = None, metrics: Optional[MetricsWriter] = None,
               ckpt_every: Optional[int] = None, desc: str = "train",
               progress_fn: Optional[Callable[[int, Mapping], None]] = None,
               eval_fn: Optional[Callable[[TrainState], Mapping]] = None, eval_every: Optional[int] = None,
               show_progress: bool = True, stop_after: Optional[int] = None) -> TrainState:
    """Runs ``chunk_fn`` until ``state.step == total_steps``, resuming from ``store``.

    Args:
      chunk_fn: jitted; advances the state by ``chunk_size`` steps.
      ckpt_every: checkpoint period in steps (a multiple of ``chunk_size``);
        the final step is always checkpointed.
      progress_fn: called as ``progress_fn(step, metrics)`` after each chunk.
      eval_fn: periodic evaluation, ``eval_fn(state) -> metrics``, run every
        ``eval_every`` steps (a multiple of ``chunk_size``) and logged with the
        training metrics.
      stop_after: stop (as if interrupted) once this step is reached; for tests.
    """
    if total_steps % chunk_size:
        raise OmniJaxError(f"the number of steps ({total_steps}) must be a multiple of the chunk size ({chunk_size})")
    ckpt_every = ckpt_every or total_steps
    if ckpt_every % chunk_size:
        raise OmniJaxError(f"the checkpoint period ({ckpt_every}) must be a multiple of the chunk size ({chunk_size})")
    start = 0
    if store is not None and store.latest_step() is not None:
        start = store.latest_step()
        state = store.restore(state, start)
        if int(state.step) != start:
            raise OmniJaxError(f"checkpoint {store.directory / str(start)} holds step {int(state.step)}, not {start}")
    if metrics is not None:
        metrics.truncate_after(start)
    if eval_fn is not None and (not eval_every or eval_every % chunk_size):
        raise OmniJaxError(f"the evaluation period ({eval_every}) must be a positive multiple of the chunk size ({chunk_size})")
    if start >= total_steps:
        return state
    bar = tqdm(total=total_steps, initial=start, desc=desc, disable=not show_progress,
               dynamic_ncols=True, leave=True)
    step = start
    try:
        while step < total_steps:
            state, m = chunk_fn(state)
            step += chunk_size
            m = dict(jax.device_get(m))
            if eval_fn is not None and (step % eval_every == 0 or step == total_steps):
                m.update(jax.device_get(eval_fn(state)))
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
    finally:
        bar.close()
    return state
