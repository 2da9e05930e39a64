"""Validation during training, and model selection on it: one hook for every experiment.

Every ``train.val_every`` steps an experiment's ``validate(params, batch_stats) -> (score,
metrics)`` scores the current model on validation tasks (never the test tasks), and
:func:`validation_hook` logs its metrics (``val/...`` in ``metrics.jsonl`` and TensorBoard).
Where the experiment selects (classification always, RL with ``train.val_every > 0``), the hook
also keeps the best-scoring parameters so far in the state's :class:`Best` record; the finished
run is tested with them (:func:`selected`). The sinusoid experiment tests its last step, as the
paper does, and only logs.

The record is part of the checkpointed :class:`~omni_jax.training.loop.TrainState`, so a resumed
run selects exactly as an uninterrupted one, and a checkpoint holds a second copy of the
parameters: the price of saving the selection atomically with the step it belongs to.

What the score depends on must be part of the checkpoint's fingerprint, or the selection would
change half-way through a resumed run: each experiment builds its validation settings from
``train`` fields and draws its tasks from the ``validation`` stream of the training seed
(``omni_jax.training.rng``), never from ``eval.*``.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Optional, Tuple

import flax
import jax.numpy as jnp

from omni_jax.training.loop import Hook, TrainState

NO_SCORE = float(jnp.finfo(jnp.float32).min)   # the best score before the first validation


@flax.struct.dataclass
class Best:
    """The best-so-far record of model selection (higher ``score`` is better).

    Attributes:
      params: the parameters that scored best.
      batch_stats: their BatchNorm statistics (``None`` for models without).
      score: their validation score (accuracy in %, mean return, ...), float32.
      step: the training step they are from, int32 (0 before the first validation).
    """

    params: Any
    batch_stats: Any
    score: jnp.ndarray
    step: jnp.ndarray


def initial_best(params, batch_stats=None) -> Best:
    """The record of a run that has not validated yet: the initial parameters, score :data:`NO_SCORE`."""
    return Best(params=params, batch_stats=batch_stats, score=jnp.asarray(NO_SCORE, jnp.float32),
                step=jnp.zeros((), jnp.int32))


Validate = Callable[[Any, Any], Tuple[float, Mapping[str, float]]]


def validation_hook(validate: Validate, every: int, *, select: bool = True) -> Hook:
    """A :class:`~omni_jax.training.loop.Hook` that validates every ``every`` steps (and at the last).

    Args:
      validate: ``validate(params, batch_stats) -> (score, metrics)``; deterministic in its inputs
        (the same validation tasks and keys at every call).
      every: the period in steps (a multiple of the chunk size).
      select: keep the best-scoring parameters in ``state.best`` (which must be set, see
        :func:`initial_best`); a score replaces the record only when strictly higher, so ties keep
        the earlier step.
    """

    def fn(state: TrainState):
        score, metrics = validate(state.params, state.batch_stats)
        if select:
            if state.best is None:
                raise ValueError("validation_hook(select=True) needs a state whose best record is set "
                                 "(omni_jax.training.selection.initial_best)")
            if float(score) > float(state.best.score):
                state = state.replace(best=Best(params=state.params, batch_stats=state.batch_stats,
                                                score=jnp.asarray(score, jnp.float32), step=state.step))
        return state, dict(metrics)

    return Hook(fn, every)


class Selected(NamedTuple):
    """What a finished run is tested with: the selected parameters and statistics, the step they
    are from, and their validation score (``None`` when the run did not select)."""

    params: Any
    batch_stats: Any
    step: int
    score: Optional[float]


def selected(state: TrainState) -> Selected:
    """The best parameters of a run that selected, else the last step's."""
    b = state.best
    if b is None:
        return Selected(state.params, state.batch_stats, int(state.step), None)
    return Selected(b.params, b.batch_stats, int(b.step), float(b.score))
