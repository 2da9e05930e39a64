"""Guards between training and the files a run reports: no numbers from a run that learned nothing,
and a ``results.json`` that is always valid JSON.

* :func:`check_updates`: a method whose every update was skipped (a non-finite loss or gradient
  at each step: an overflowing data range, a diverging learning rate) stops the run with an
  :class:`~omni_jax.errors.OmniJaxError` instead of evaluating the untrained parameters.
* :func:`divergence`: a run whose training loss ended non-finite or grew by orders of magnitude is
  reported (on the terminal and as ``"warning"`` in its records), not silently tabulated.
* :func:`json_safe`: the records with every non-finite number (NaN, ±inf) replaced by ``None``
  (JSON ``null``) and NumPy/JAX scalars and arrays made plain Python, so that ``json.dumps(...,
  allow_nan=False)`` accepts them; :func:`count_nonfinite` says how many there were.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from omni_jax.errors import OmniJaxError
from omni_jax.training.loop import FIRST_STEP_LOSS


def skipped_count(state) -> "int | None":
    """How many of the updates of ``state`` (a :class:`~omni_jax.training.loop.TrainState`) were
    skipped, as :func:`omni_jax.omni.omni_optimizer` counts them; ``None`` for an optimizer state
    without that count."""
    from omni_jax.omni import skipped_updates
    try:
        return int(skipped_updates(state.opt_state)[1])
    except ValueError:  # not an omni_optimizer state: nothing counted
        return None


def check_updates(method: str, state, num_steps: int) -> None:
    """Raises an ``OmniJaxError`` when every one of ``method``'s updates so far was skipped.

    ``state`` is a :class:`~omni_jax.training.loop.TrainState` whose optimizer state was built by
    :func:`omni_jax.omni.omni_optimizer` (which counts the skipped updates); a state without that
    count is not checked.
    """
    skipped = skipped_count(state)
    if skipped is None:
        return
    steps = int(state.step)
    if steps > 0 and skipped >= steps:
        raise OmniJaxError(
            f"{method}: all {steps} of its {num_steps} training updates were skipped (the loss or its gradient "
            "was not finite at every step), so it learned nothing and no results are reported; check the "
            "config's data ranges and learning rates (see loss/total in its metrics.jsonl)")


def json_safe(value: Any) -> Any:
    """``value`` with NumPy/JAX numbers and arrays made plain Python and non-finite floats as ``None``."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # a NumPy or JAX array
        return json_safe(np.asarray(value).tolist())
    return value


def count_nonfinite(value: Any) -> int:
    """How many non-finite numbers (NaN, ±inf) ``value`` holds (nested dicts and lists, arrays)."""
    if isinstance(value, dict):
        return sum(count_nonfinite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(count_nonfinite(v) for v in value)
    if isinstance(value, (bool, np.bool_, int, np.integer)):
        return 0
    if isinstance(value, (float, np.floating)):
        return 0 if math.isfinite(float(value)) else 1
    if hasattr(value, "shape") and hasattr(value, "dtype") and np.issubdtype(np.asarray(value).dtype, np.floating):
        return int(np.size(value) - np.count_nonzero(np.isfinite(np.asarray(value))))
    return 0


def has_null(value: Any) -> bool:
    """Whether ``value`` (read back from JSON) holds a ``None`` anywhere (a number written as null)."""
    if isinstance(value, dict):
        return any(has_null(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_null(v) for v in value)
    return value is None


GROWTH = 100.0   # a final loss this many times its first (or 1, whichever is larger) in magnitude: diverged


def divergence(metrics_path, key: str = "loss/total") -> "str | None":
    """Why the training logged in ``metrics_path`` (a ``metrics.jsonl``) looks diverged, or ``None``:
    its last ``key`` is not finite, or it is more than :data:`GROWTH` times the first in magnitude
    (floored at 1, so losses that start near zero are not flagged for ordinary noise). For the total
    loss the first is the loss before any update (``loss/first_step`` of the first chunk), so a run
    that blows up within its first chunk is caught too."""
    from omni_jax.training.metrics import MetricsWriter
    records, _ = MetricsWriter(metrics_path, tensorboard=False).read_lines()
    values = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    values += [(r["step"], math.nan) for r in records if key in r and r[key] is None]
    if not values:
        return None
    values.sort()
    (first_step, first), (last_step, last) = values[0], values[-1]
    start = next((r for r in sorted(records, key=lambda r: r["step"]) if isinstance(r.get(FIRST_STEP_LOSS), (int, float))),
                 None)
    if key == "loss/total" and start is not None and start["step"] == first_step and math.isfinite(start[FIRST_STEP_LOSS]):
        # the loss before the first update (a run can blow up within its first chunk)
        first, first_step = start[FIRST_STEP_LOSS], 0
    if not math.isfinite(last):
        return f"its training loss ({key}) was not finite at step {last_step}"
    if math.isfinite(first) and abs(last) > GROWTH * max(abs(first), 1.0):
        return (f"its training loss ({key}) grew from {first:.4g} at step {first_step} to {last:.4g} at step "
                f"{last_step}: it diverged")
    return None
