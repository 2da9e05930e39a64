"""The shared pipeline on a toy experiment: the update step, Chunk, the Hook, and the runner's contract."""
import json

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from omni_jax import config as config_lib
from omni_jax.errors import OmniJaxError
from omni_jax.omni import (METHOD_WEIGHTS, OmniLossWeights, omni_optimizer, omni_update, skipped_updates,
                           teacher_params)
from omni_jax.training import Chunk, Hook, TrainState, initial_best, prng_stream, runner, train_loop, validation_hook
from omni_jax.training.checkpoint import CheckpointStore


# ---------------------------------------------------------------------------- the update step


def quadratic_loss(params, teacher, target, poison):
    """0.5·|w - target|² (+ NaN when ``poison``); aux counts the calls."""
    loss = 0.5 * jnp.sum(jnp.square(params["w"] - target)) + jnp.where(poison, jnp.nan, 0.0)
    return loss, ({"loss/total": loss}, jnp.ones(()))


def test_omni_update_takes_the_optimizer_step_and_moves_the_teacher():
    params = {"w": jnp.array([1.0, -2.0])}
    opt = omni_optimizer(optax.sgd(0.5), OmniLossWeights(), ema_decay=0.9)
    state = opt.init(params)
    new, state2, aux, finite, metrics = omni_update(quadratic_loss, opt)(params, state, jnp.zeros(2), False)
    np.testing.assert_allclose(new["w"], [0.5, -1.0])          # w - 0.5·(w - 0)
    np.testing.assert_allclose(teacher_params(state2)["w"], 0.9 * np.array([1.0, -2.0]) + 0.1 * np.array([0.5, -1.0]))
    assert bool(finite) and float(aux) == 1.0
    np.testing.assert_allclose(metrics["grad_norm"], np.sqrt(5.0), rtol=1e-6)
    assert float(metrics["skipped"]) == 0.0 and float(metrics["skipped_total"]) == 0.0


@pytest.mark.parametrize("poison_where", ["loss", "grad"])
def test_omni_update_skips_a_non_finite_step_and_counts_it(poison_where):
    params = {"w": jnp.array([1.0, -2.0])}
    opt = omni_optimizer(optax.adam(0.1), OmniLossWeights(), ema_decay=0.9)
    state = opt.init(params)
    update = omni_update(quadratic_loss, opt)
    target = jnp.array([jnp.nan, 0.0]) if poison_where == "grad" else jnp.zeros(2)
    new, state2, _, finite, metrics = update(params, state, target, poison_where == "loss")
    assert not bool(finite)
    chex.assert_trees_all_equal(new, params)
    chex.assert_trees_all_equal(teacher_params(state2), teacher_params(state))
    adam = lambda s: optax.tree_utils.tree_get(s, "mu")
    chex.assert_trees_all_equal(adam(state2), adam(state))       # the moments too
    assert float(metrics["skipped"]) == 1.0 and float(metrics["skipped_total"]) == 1.0
    # a finite step afterwards trains again, and the count stays
    new, state3, _, finite, metrics = update(new, state2, jnp.zeros(2), False)
    assert bool(finite) and not np.allclose(new["w"], params["w"])
    assert [int(v) for v in skipped_updates(state3)] == [0, 1]


def test_omni_optimizer_adds_the_teacher_only_when_distilling():
    params = {"w": jnp.zeros(2)}
    assert teacher_params(omni_optimizer(optax.sgd(1.0), OmniLossWeights()).init(params)) is not None
    with pytest.raises(ValueError, match="no ema_teacher"):
        teacher_params(omni_optimizer(optax.sgd(1.0), METHOD_WEIGHTS["maml"]).init(params))


# ---------------------------------------------------------------------------- Chunk and Hook


def counting_step(state, data):
    rng, key = jax.random.split(state.rng)
    noise = jax.random.normal(key, state.params.shape)
    params = state.params + data * noise
    return state.replace(step=state.step + 1, params=params, rng=rng), {"loss/total": jnp.sum(params)}


def initial_state():
    return TrainState(step=jnp.zeros((), jnp.int32), params=jnp.zeros(3), opt_state=(), rng=jax.random.PRNGKey(0),
                      best=initial_best(jnp.zeros(3)))


def test_scanned_and_dispatched_chunks_agree():
    a, ma = Chunk(counting_step, 4)(initial_state(), jnp.asarray(0.5))
    b, mb = Chunk(counting_step, 4, scan=False)(initial_state(), jnp.asarray(0.5))
    chex.assert_trees_all_close(a, b, rtol=1e-6)
    np.testing.assert_allclose(ma["loss/total"], mb["loss/total"], rtol=1e-6)
    assert int(a.step) == 4


def closeness(params, batch_stats):
    score = -float(jnp.sum(jnp.abs(params)))
    return score, {"val/score": score}


best_so_far = validation_hook(closeness, 4).fn


def test_hook_state_is_checkpointed_and_resume_is_exact(tmp_path):
    chunk, hook = Chunk(counting_step, 2), Hook(best_so_far, 4)
    run = lambda d, **kw: train_loop(initial_state(), chunk, total_steps=8, chunk_size=2, data=jnp.asarray(1.0),
                                     store=CheckpointStore(d, {"x": 1}), ckpt_every=2, hook=hook,
                                     show_progress=False, **kw)
    full = run(tmp_path / "a")
    cut = run(tmp_path / "b", stop_after=6)
    assert int(cut.step) == 6
    resumed = run(tmp_path / "b")
    chex.assert_trees_all_equal(full, resumed)
    assert int(full.best.step) in (4, 8) and float(full.best.score) == closeness(full.best.params, None)[0]


def test_hook_period_must_be_a_multiple_of_the_chunk():
    with pytest.raises(OmniJaxError, match="hook's period"):
        train_loop(initial_state(), Chunk(counting_step, 2), total_steps=4, chunk_size=2, hook=Hook(best_so_far, 3),
                   show_progress=False)


def test_prng_streams_are_named_and_independent_of_order():
    assert not np.array_equal(prng_stream(0, "init", "maml"), prng_stream(0, "init", "omni"))
    assert np.array_equal(prng_stream(3, "test", 5), prng_stream(3, "test", 5))
    assert not np.array_equal(prng_stream(3, "test", 5), prng_stream(3, "validation", 5))
    with pytest.raises(KeyError, match="unknown PRNG stream"):
        prng_stream(0, "nope")


# ---------------------------------------------------------------------------- the runner


def toy_config(**over):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.train = t = ml_collections.ConfigDict()
    t.methods = ("a", "b")
    t.num_steps = 4
    t.chunk_size = 2
    t.scale = 1.0
    c.eval = ml_collections.ConfigDict({"offset": 0.0})
    return config_lib.apply_overrides(c, [f"{k}={v}" for k, v in over.items()])


class ToyEvaluator(runner.Evaluator):
    def __init__(self, cfg, calls):
        self.cfg, self.calls = cfg, calls

    def __call__(self, trained):
        self.calls.append(sorted(trained))
        return [{"method": m, "value": float(jnp.sum(t.state.params)) + self.cfg.eval.offset, "step": int(t.state.step)}
                for m, t in trained.items()]


class Toy(runner.Experiment):
    name = "toy"

    def __init__(self):
        self.calls, self.trained = [], []

    def fingerprint(self, cfg, method):
        return config_lib.fingerprint(cfg, method, ["train"], drop=("train.methods",))

    def setup(self, cfg, method, context, mesh):
        self.trained.append(method)
        state = initial_state().replace(rng=prng_stream(cfg.seed, "init", method))
        return runner.Program(state=state, chunk=Chunk(counting_step, cfg.train.chunk_size),
                              num_steps=cfg.train.num_steps, ckpt_every=2, data=jnp.asarray(cfg.train.scale))

    def evaluator(self, cfg, programs, context, mesh):
        return ToyEvaluator(cfg, self.calls)

    def table(self, cfg, records):
        return "\n".join(f"{r['method']} {r['value']:.3f}" for r in records)


def quiet(**kw):
    return dict(show_progress=False, log=lambda m: None, compile_workers=0, **kw)


def test_runner_trains_evaluates_writes_and_restores(tmp_path):
    toy = Toy()
    records = runner.train_and_evaluate(toy, toy_config(), tmp_path, **quiet())
    assert [r["method"] for r in records] == ["a", "b"] and all(r["step"] == 4 for r in records)
    assert json.loads((tmp_path / "results.json").read_text()) == records
    assert json.loads((tmp_path / "evaluation.json").read_text())["files"] == ["results.json"]
    assert [json.loads(l)["step"] for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()] == [2, 4]
    # the same config again: restored without training or evaluating
    again, logged = Toy(), []
    assert runner.train_and_evaluate(again, toy_config(), tmp_path, show_progress=False, log=logged.append) == records
    # (each method is set up, so that its model's shapes are checked against the checkpoint, never trained)
    assert again.calls == [] and again.trained == ["a", "b"] and "restored finished a, b" in logged[0]
    assert [json.loads(l)["step"] for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()] == [2, 4]
    # another evaluation setting: the checkpoints are reused, the evaluation runs again
    third = Toy()
    shifted = runner.train_and_evaluate(third, toy_config(**{"eval.offset": 1.0}), tmp_path, **quiet())
    assert third.calls == [["a", "b"]]
    assert [r["value"] for r in shifted] == pytest.approx([r["value"] + 1.0 for r in records])


@pytest.mark.parametrize("damage", ["missing", "garbage", "other_files"])
def test_runner_evaluates_again_when_the_evaluation_record_is_damaged(tmp_path, damage):
    records = runner.train_and_evaluate(Toy(), toy_config(), tmp_path, **quiet())
    path = tmp_path / "evaluation.json"
    if damage == "missing":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"\x00\xff{not json")
    else:
        path.write_text(json.dumps(dict(json.loads(path.read_text()), files=["results.json", "gone.png"])))
    toy = Toy()
    assert runner.train_and_evaluate(toy, toy_config(), tmp_path, **quiet()) == records
    assert toy.calls == [["a", "b"]]


def test_runner_checks_every_checkpoint_before_training_any(tmp_path):
    runner.train_and_evaluate(Toy(), toy_config(**{"train.methods": ("b",)}), tmp_path, **quiet())
    before = sorted(p.name for p in tmp_path.iterdir())
    toy = Toy()
    with pytest.raises(OmniJaxError, match="incompatible config.*train.scale"):
        runner.train_and_evaluate(toy, toy_config(**{"train.scale": 2.0}), tmp_path, **quiet())
    assert toy.trained == [] and sorted(p.name for p in tmp_path.iterdir()) == before  # "a" not created


def test_runner_stop_after_and_resume_equals_an_uninterrupted_run(tmp_path):
    full = runner.train_and_evaluate(Toy(), toy_config(), tmp_path / "full", **quiet())
    assert runner.train_and_evaluate(Toy(), toy_config(), tmp_path / "cut", **quiet(stop_after=2)) is None
    assert not (tmp_path / "cut" / "results.json").exists()
    assert runner.train_and_evaluate(Toy(), toy_config(), tmp_path / "cut", **quiet()) == full


def test_runner_compiles_ahead_in_threads_with_the_same_results(tmp_path):
    serial = runner.train_and_evaluate(Toy(), toy_config(), tmp_path / "serial", **quiet())
    threaded = runner.train_and_evaluate(Toy(), toy_config(), tmp_path / "threads", show_progress=False,
                                         log=lambda m: None, compile_workers=2)
    assert threaded == serial


def test_each_evaluation_is_kept_and_evaluate_only_never_trains(tmp_path):
    with pytest.raises(OmniJaxError, match="--eval-only: a .* is at step 0 of 4; train it first"):
        runner.train_and_evaluate(Toy(), toy_config(), tmp_path, **quiet(evaluate_only=True))
    first = runner.train_and_evaluate(Toy(), toy_config(), tmp_path, **quiet())
    toy = Toy()
    second = runner.train_and_evaluate(toy, toy_config(**{"eval.offset": 2.0}), tmp_path,
                                       **quiet(evaluate_only=True))
    assert toy.trained == ["a", "b"] and toy.calls == [["a", "b"]]  # set up and restored, evaluated, not trained
    kept = sorted((tmp_path / "evaluations").glob("*.json"))
    assert len(kept) == 2
    records = sorted((json.loads(p.read_text())["records"] for p in kept), key=lambda r: r[0]["value"])
    assert records == [first, second]
    assert json.loads((tmp_path / "results.json").read_text()) == second  # the latest
    for p in kept:
        stamp = json.loads(p.read_text())["stamp"]
        assert p.stem == runner.evaluation_key(stamp)
    # each config's evaluation is read back by its config, whichever is the latest
    assert runner.evaluated_records(toy_config(), tmp_path) == first
    assert runner.evaluated_records(toy_config(**{"eval.offset": 2.0}), tmp_path) == second
    assert runner.evaluated_records(toy_config(**{"eval.offset": 3.0}), tmp_path) is None


def test_train_only_trains_every_method_and_writes_no_results(tmp_path):
    toy = Toy()
    assert runner.train_and_evaluate(toy, toy_config(), tmp_path, **quiet(train_only=True)) is None
    assert toy.calls == [] and not (tmp_path / "results.json").exists() and not (tmp_path / "evaluations").exists()
    # finished: the evaluation restores them without training, with the numbers of a run doing both
    again = Toy()
    records = runner.train_and_evaluate(again, toy_config(), tmp_path, **quiet(evaluate_only=True))
    assert records == runner.train_and_evaluate(Toy(), toy_config(), tmp_path / "both", **quiet())
    with pytest.raises(OmniJaxError, match="exclude each other"):
        runner.train_and_evaluate(Toy(), toy_config(), tmp_path, **quiet(train_only=True, evaluate_only=True))


class Wider(Toy):
    """The same config, another model: what a user's edited network looks like to the runner."""

    def setup(self, cfg, method, context, mesh):
        program = super().setup(cfg, method, context, mesh)
        program.state = program.state.replace(params=jnp.zeros(4), best=initial_best(jnp.zeros(4)))
        return program


def test_a_model_changed_in_code_never_resumes_or_reprints(tmp_path):
    records = runner.train_and_evaluate(Toy(), toy_config(), tmp_path, **quiet())
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    logged = []
    with pytest.raises(OmniJaxError, match=r"another model under the same config \(parameters "
                                           r"params \(was 'float32\[3\]', now 'float32\[4\]'\)\)"):
        runner.train_and_evaluate(Wider(), toy_config(), tmp_path, show_progress=False, log=logged.append,
                                  compile_workers=0)
    assert logged == []    # no stale table
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != ".omni-jax.lock"} == \
        {p: b for p, b in before.items() if p.name != ".omni-jax.lock"}
    with pytest.raises(OmniJaxError, match="another model"):   # an unfinished run refuses to resume too
        runner.train_and_evaluate(Wider(), toy_config(), tmp_path / "half", **quiet(stop_after=2)) or \
            runner.train_and_evaluate(Toy(), toy_config(), tmp_path / "half", **quiet())
    # the old model still reprints its results
    assert runner.train_and_evaluate(Toy(), toy_config(), tmp_path, **quiet()) == records


def test_a_checkpoint_from_before_the_model_shapes_were_recorded_resumes(tmp_path):
    runner.train_and_evaluate(Toy(), toy_config(), tmp_path, **quiet(stop_after=2))
    path = tmp_path / "a" / "checkpoints" / "config.json"
    old = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in old.items() if k != "parameters"}))
    assert "parameters" in old
    records = runner.train_and_evaluate(Toy(), toy_config(), tmp_path, **quiet())
    assert all(r["step"] == 4 for r in records)
    assert json.loads(path.read_text())["parameters"] == old["parameters"]   # recorded at its next save
