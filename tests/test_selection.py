"""Model selection on validation tasks (``omni_jax.training.selection``), one home for every experiment."""
import json
from typing import Any

import chex
import flax
import jax.numpy as jnp
import numpy as np
import pytest

from omni_jax import config as config_lib
from omni_jax.training import Best, TrainState, initial_best, runner, selected, validation_hook
from omni_jax.training.checkpoint import CheckpointStore
from omni_jax.training.selection import NO_SCORE


def state_with(params, best=True, batch_stats=None, step=0):
    return TrainState(step=jnp.asarray(step, jnp.int32), params=params, opt_state=(), rng=jnp.zeros(2, jnp.uint32),
                      batch_stats=batch_stats, best=initial_best(params, batch_stats) if best else None)


def scored(scores):
    """A validation function whose score is ``scores[step]`` (read from the parameters' first entry)."""
    return lambda params, stats: (scores[int(params[0])], {"val/score": scores[int(params[0])]})


def test_the_hook_keeps_the_strictly_best_and_ties_keep_the_earlier_step():
    scores = {0: 1.0, 1: 3.0, 2: 3.0, 3: 2.0}
    hook = validation_hook(scored(scores), every=2)
    state = state_with(jnp.zeros(2))
    assert float(state.best.score) == NO_SCORE and int(state.best.step) == 0
    for step in range(4):
        state = state.replace(step=jnp.asarray(step), params=jnp.full(2, float(step)))
        state, metrics = hook.fn(state)
        assert metrics == {"val/score": scores[step]}
    assert int(state.best.step) == 1 and float(state.best.score) == 3.0          # not the tie at step 2
    np.testing.assert_array_equal(state.best.params, jnp.ones(2))
    chosen = selected(state)
    assert (chosen.step, chosen.score) == (1, 3.0) and np.array_equal(chosen.params, jnp.ones(2))


def test_the_record_keeps_the_batch_statistics_of_the_best_step():
    hook = validation_hook(scored({0: 0.0, 1: 5.0, 2: 1.0}), every=1)
    state = state_with(jnp.zeros(1), batch_stats={"mean": jnp.zeros(1)})
    for step in range(3):
        state = state.replace(step=jnp.asarray(step), params=jnp.full(1, float(step)),
                              batch_stats={"mean": jnp.full(1, 10.0 * step)})
        state, _ = hook.fn(state)
    assert int(state.best.step) == 1 and float(state.best.batch_stats["mean"][0]) == 10.0
    assert float(selected(state).batch_stats["mean"][0]) == 10.0


def test_logging_only_leaves_the_last_step_tested():
    hook = validation_hook(scored({0: 9.0}), every=1, select=False)
    state, metrics = hook.fn(state_with(jnp.zeros(1), best=False, step=0))
    assert state.best is None and metrics == {"val/score": 9.0}
    chosen = selected(state.replace(step=jnp.asarray(7)))
    assert chosen.step == 7 and chosen.score is None


def test_selecting_needs_a_record():
    with pytest.raises(ValueError, match="initial_best"):
        validation_hook(scored({0: 1.0}), every=1).fn(state_with(jnp.zeros(1), best=False))


# ---------------------------------------------------------------------------- checkpoints from before the record


@flax.struct.dataclass
class OldTrainState:
    """The state's layout on disk before it was typed (one untyped ``extra`` field)."""

    step: Any
    params: Any
    opt_state: Any
    rng: Any
    extra: Any = None


P, Q = {"w": jnp.arange(3.0)}, {"w": jnp.arange(3.0) + 10}
STATS, BEST_STATS = {"mean": jnp.ones(2)}, {"mean": jnp.full(2, 7.0)}
LAYOUTS = {   # what each experiment wrote: (old extra, the new target, what it must restore as)
    "sinusoid": (None, state_with(P, best=False), None),
    "rl_selecting": ({"best_params": Q, "best_return": jnp.asarray(-12.5, jnp.float32),
                      "best_step": jnp.asarray(50, jnp.int32)}, state_with(P),
                     Best(params=Q, batch_stats=None, score=jnp.asarray(-12.5, jnp.float32),
                          step=jnp.asarray(50, jnp.int32))),
    "classification": ({"batch_stats": STATS, "best_params": Q, "best_batch_stats": BEST_STATS,
                        "best_val": jnp.asarray(81.25, jnp.float32), "best_step": jnp.asarray(1000, jnp.int32)},
                       state_with(P, batch_stats=STATS),
                       Best(params=Q, batch_stats=BEST_STATS, score=jnp.asarray(81.25, jnp.float32),
                            step=jnp.asarray(1000, jnp.int32))),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_checkpoints_written_before_the_typed_state_still_resume(tmp_path, layout):
    extra, target, best = LAYOUTS[layout]
    old = OldTrainState(step=jnp.asarray(4, jnp.int32), params=P, opt_state=(), rng=jnp.zeros(2, jnp.uint32),
                        extra=extra)
    store = CheckpointStore(tmp_path, {"x": 1})
    store.save(4, old)
    store.close()
    store = CheckpointStore(tmp_path, {"x": 1})
    try:
        step, restored = store.restore_latest(target)
    finally:
        store.close()
    assert step == 4 and isinstance(restored, TrainState) and int(restored.step) == 4
    chex.assert_trees_all_equal(restored.params, P)
    if layout == "classification":
        chex.assert_trees_all_equal(restored.batch_stats, STATS)
    if best is None:
        assert restored.best is None
    else:
        chex.assert_trees_all_equal(restored.best, best)
    assert not (tmp_path.parent / "checkpoints.damaged").exists()   # nothing set aside as damage


def test_a_checkpoint_of_another_layout_is_still_refused(tmp_path):
    """The legacy layouts widen what restores, not what matches: other trees stay an error."""
    from omni_jax.errors import OmniJaxError
    store = CheckpointStore(tmp_path / "c", {"x": 1})
    store.save(2, OldTrainState(step=jnp.asarray(2), params={"v": jnp.ones(5)}, opt_state=(),
                                rng=jnp.zeros(2, jnp.uint32), extra=None))
    with pytest.raises(OmniJaxError, match="does not match this model"):
        store.restore(state_with(P, best=False), 2)
    store.close()


# ---------------------------------------------------------------------------- classification: fingerprinted settings only


@pytest.mark.slow
def test_classification_selection_ignores_the_evaluation_settings_on_resume(tmp_path):
    """The selection reads only fields of the checkpoint's fingerprint: a run resumed with another
    ``eval.seed``, ``eval.n_query`` and test-time MAML settings validates on the same tasks and
    selects the same step as the uninterrupted run."""
    from omni_jax.classification.experiment import ClassificationExperiment, train_and_evaluate
    from omni_jax.training.metrics import MetricsWriter
    from test_classification_train import SMALL
    base = [a.removeprefix("--config.") for a in SMALL if a.startswith("--config.")]
    cfg = config_lib.apply_overrides(config_lib.load_config("classify_synthetic", quick=True),
                                     base + ["train.methods=('protonet',)", "train.num_steps=8", "train.val_tasks=8"])
    quiet = dict(show_progress=False, log=lambda s: None)
    full = train_and_evaluate(cfg, tmp_path / "a", **quiet)
    assert train_and_evaluate(cfg, tmp_path / "b", stop_after=4, **quiet) is None
    changed = config_lib.apply_overrides(cfg, ["eval.seed=99", "eval.n_query=2", "eval.maml_steps=1",
                                               "eval.maml_lr=0.5"])
    resumed = train_and_evaluate(changed, tmp_path / "b", **quiet)
    logged = [[r["val/accuracy"] for r in MetricsWriter(tmp_path / d / "protonet" / "metrics.jsonl").read()
               if "val/accuracy" in r] for d in ("a", "b")]
    assert len(logged[0]) == 4 and logged[0] == logged[1]
    assert {r["selected_step"] for r in full} == {r["selected_step"] for r in resumed}
    assert {r["val_accuracy"] for r in full} == {r["val_accuracy"] for r in resumed}
    a, b = (runner.trained_models(ClassificationExperiment(), c, tmp_path / d)["protonet"].state
            for c, d in ((cfg, "a"), (changed, "b")))
    chex.assert_trees_all_equal(a.best, b.best)
    assert json.loads((tmp_path / "b" / "results.json").read_text()) == resumed



@pytest.mark.parametrize("heads", [("default",), ("joint", "pre", "meta", "ensemble"), ("pre",)])
def test_classification_selects_with_the_methods_own_head_whatever_eval_heads_says(monkeypatch, heads):
    """eval.heads is no part of the fingerprint, so selection must not read it (a run resumed with
    other eval.heads would otherwise select with another head from then on): omni_proto selects on
    its own head, the ensemble, and logs every head beside it."""
    from types import SimpleNamespace
    from omni_jax.classification import experiment
    score = {"joint": 0.5, "pre": 0.25, "meta": 0.75, "ensemble": 0.625}

    class Scores:
        def __init__(self, *a, **k):
            pass

        def accuracies(self, variables, split, **kw):
            return {h: np.full(4, score[h]) for h in kw["heads"]}

    monkeypatch.setattr(experiment, "Evaluator", Scores)
    cfg = config_lib.load_config("classify_synthetic", quick=True)
    cfg.eval.heads = heads
    spec = experiment.spec_for(cfg, "omni_proto")
    hook = experiment.selection_hook(cfg, None, spec, SimpleNamespace(device={"val": None}))
    state = TrainState(step=jnp.asarray(10), params={"w": jnp.zeros(2)}, opt_state=(), rng=jnp.zeros(2, jnp.uint32),
                       best=initial_best({"w": jnp.zeros(2)}))
    new, metrics = hook.fn(state)
    assert metrics["val/accuracy"] == 62.5 and float(new.best.score) == 62.5
    assert {k: metrics[k] for k in metrics if k != "val/accuracy"} == {
        f"val/accuracy/{h}": 100 * v for h, v in score.items()}
