"""Every field of every experiment is checked before any work: types (inside lists too), finite
numbers of sensible size, seeds, missing and unknown fields, another experiment's config, files
that are not configs; a run whose every update was skipped reports no numbers; results are valid JSON."""
import json
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from omni_jax import cli
from omni_jax import config as config_lib
from omni_jax.classification import experiment as classify_experiment
from omni_jax.errors import OmniJaxError
from omni_jax.omni import OmniLossWeights, omni_optimizer, omni_update
from omni_jax.sinusoid import train as sinusoid_train
from omni_jax.training import results
from omni_jax.training.loop import TrainState

CHECKS = {"sinusoid": sinusoid_train.check, "classify": classify_experiment.check}


def _rl_check():
    pytest.importorskip("brax")
    from omni_jax.rl import train as rl_train
    return rl_train.check


def _changed(cfg, field, value):
    """A copy of ``cfg`` (as a user's file could build it: no type locking) with ``field`` set or deleted."""
    d = cfg.to_dict()
    *path, last = field.split(".")
    node = d
    for part in path:
        node = node[part]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return ml_collections.ConfigDict(d)


def test_every_packaged_config_passes_its_experiments_checks_and_fails_the_others():
    check = dict(CHECKS, rl=_rl_check())
    for name in config_lib.packaged_configs():
        cfg = config_lib.load_config(name)
        own = next(e for e, names in (("rl", "rl_"), ("classify", "classify"), ("sinusoid", "sinusoid"))
                   if name.startswith(names))
        check[own](cfg)
        for other, fn in check.items():
            if other != own:
                with pytest.raises(OmniJaxError, match=f"not a config for `omni-jax {other}`: its fields are those "
                                                       f"of a config for `omni-jax {own}`"):
                    fn(cfg)


@pytest.mark.parametrize("field,value,message", [
    ("data.amp_max", math.inf, "data.amp_max must be a finite number, got inf"),
    ("data.amp_min", math.nan, "data.amp_min must be a finite number, got nan"),
    ("data.x_max", 1e30, r"data.x_max=1e\+30 is out of range; expected a magnitude of at most 1e\+06"),
    ("train.outer_lr", -math.inf, "train.outer_lr must be a finite number"),
    ("model.widths", (64, "64"), r"model.widths\[1\] must be an integer, got '64' \(str\)"),
    ("model.widths", (64, 1.5), r"model.widths\[1\] must be an integer, got 1.5 \(float\)"),
    ("model.widths", (64, True), r"model.widths\[1\] must be an integer, got True \(bool\)"),
    ("eval.k_shots", 5, r"eval.k_shots must be a list such as \(1, 2\), got 5"),
    ("eval.k_shots", (5, 2 ** 40), r"eval.k_shots\[1\]=1099511627776 is out of range"),
    ("train.methods", ("maml", 3), r"train.methods\[1\] must be a string, got 3 \(int\)"),
    ("train.num_steps", 1.5, r"train.num_steps must be an integer, got 1.5 \(float\)"),
    ("train.num_steps", "500", r"train.num_steps must be an integer, got '500' \(str\)"),
    ("train.first_order", 1, r"train.first_order must be True or False, got 1 \(int\)"),
    ("train.optimizer", None, r"train.optimizer must be a string, got None"),
    ("omni.lam", math.inf, "omni.lam must be a finite number"),
    ("seed", 2 ** 32, r"seed=4294967296 is out of range; expected 0 <= seed < 2\*\*32"),
    ("seed", -1, "seed=-1 is out of range"),
    ("seed", 1.0, "seed must be an integer"),
    ("data.foo", 1, "unknown config field data.foo for sinusoid"),
    ("extra", {"a": 1}, "unknown config field extra for sinusoid"),
    ("data.amp_min", KeyError, "config field data.amp_min is missing"),
    ("data", 3, "config field data must be a group of fields, got 3"),
    ("train.meta_batch", {"a": 1}, "config field train.meta_batch must be a single value, not a group"),
])
def test_sinusoid_fields(field, value, message):
    cfg = _changed(config_lib.load_config("sinusoid", quick=True), field, value)
    with pytest.raises(OmniJaxError, match=message):
        sinusoid_train.check(cfg)


def test_the_largest_valid_seed_and_integer_numbers_pass():
    cfg = _changed(config_lib.load_config("sinusoid", quick=True), "seed", 2 ** 32 - 1)
    cfg = _changed(cfg, "train.outer_lr", 1)  # an integer is a number
    sinusoid_train.check(cfg)


@pytest.mark.parametrize("field,value,message", [
    ("train.lr", math.nan, "train.lr must be a finite number"),
    ("eval.settings", ((5, 1), (5, "5")), r"eval.settings\[1\]\[1\] must be an integer, got '5'"),
    ("eval.settings", ((5, 1), 5), r"eval.settings\[1\] must be a list such as \(1, 2\), got 5"),
    ("data.domains", ("miniimagenet", None), r"data.domains\[1\] must be a string, got None"),
    ("model.backbone", 4, "model.backbone must be a string, got 4"),
])
def test_classify_fields(field, value, message):
    cfg = config_lib.load_config("classify", quick=True)
    assert field in _flat_names(cfg), f"{field} is not a classify field: update this test"
    with pytest.raises(OmniJaxError, match=message):
        classify_experiment.check(_changed(cfg, field, value))


def _flat_names(cfg, prefix=""):
    out = set()
    for k, v in cfg.items():
        out.add(prefix + k)
        if isinstance(v, ml_collections.ConfigDict):
            out |= _flat_names(v, f"{prefix}{k}.")
    return out


@pytest.mark.parametrize("field,value,message", [
    ("env.horizon", 1e9, r"env.horizon must be an integer, got 1000000000.0"),
    ("train.discount", math.nan, "train.discount must be a finite number"),
    ("policy.widths", (64, "a"), r"policy.widths\[1\] must be an integer"),
    ("eval.lr", 1e7, "eval.lr=10000000.0 is out of range"),
])
def test_rl_fields(field, value, message):
    check = _rl_check()
    with pytest.raises(OmniJaxError, match=message):
        check(_changed(config_lib.load_config("rl_navigation2d", quick=True), field, value))


@pytest.mark.parametrize("name,text,message", [
    ("cfg.json", '{"seed": 0}', "is not a Python file"),
    ("cfg.py", "def get_config():\n    raise KeyError('oops')\n", "get_config\\(\\) in .*cfg.py failed: KeyError"),
    ("cfg.py", "def get_config(x):\n    return x\n", "get_config\\(\\) in .*cfg.py failed: TypeError"),
    ("cfg.py", "get_config = 3\n", "has no get_config"),
    ("cfg.py", "def get_config():\n    return [1]\n", "must return an ml_collections.ConfigDict, got list"),
    ("cfg.py", "\x00\x01binary", "failed to run"),
])
def test_files_that_are_not_configs(tmp_path, name, text, message):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(OmniJaxError, match=message):
        config_lib.load_config(str(p))


def test_a_directory_is_not_a_config(tmp_path):
    (tmp_path / "cfg.py").mkdir()
    with pytest.raises(OmniJaxError, match="is a directory"):
        config_lib.load_config(str(tmp_path / "cfg.py"))


@pytest.mark.parametrize("argv,message", [
    (["--seed", "4294967296"], "seed=4294967296 is out of range"),
    (["--config.data.amp_max=1e400"], "data.amp_max must be a finite number, got inf"),
    (["--config.model.widths=(64, 'wide')"], r"model.widths\[1\] must be an integer"),
    (["--config", "rl_navigation2d"], "not a config for `omni-jax sinusoid`"),
])
def test_the_command_line_stops_before_any_work(tmp_path, capsys, argv, message):
    code = cli.main(["sinusoid", "--quick", "--no-progress", "--workdir", str(tmp_path / "w")] + argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    import re
    assert re.search(message, err), err
    assert not (tmp_path / "w" / "results.json").exists()


def _state_after(losses):
    """A TrainState after one update per loss value of a one-parameter model (NaN: skipped)."""
    opt = omni_optimizer(optax.sgd(0.1), OmniLossWeights(distill_pre=False, distill_meta=False))
    update = omni_update(lambda p, teacher, c: (c * jnp.sum(p["w"] ** 2), ({}, None)), opt)
    params = {"w": jnp.ones(2)}
    opt_state = opt.init(params)
    for c in losses:
        params, opt_state, _, _, _ = update(params, opt_state, jnp.float32(c))
    return TrainState(step=jnp.int32(len(losses)), params=params, opt_state=opt_state, rng=jnp.zeros(2, jnp.uint32))


def test_a_method_whose_every_update_was_skipped_stops_the_run():
    with pytest.raises(OmniJaxError, match="omni: all 3 of its 10 training updates were skipped"):
        results.check_updates("omni", _state_after([math.nan] * 3), 10)
    results.check_updates("omni", _state_after([math.nan, 1.0, math.nan]), 10)  # one update made: fine
    results.check_updates("omni", _state_after([]), 10)


def test_results_are_valid_json_with_non_finite_numbers_as_null():
    records = [{"method": "maml", "mse": float("nan"), "ci95": np.float32(np.inf), "steps": np.int64(3),
                "curve": jnp.array([1.0, -jnp.inf]), "ok": np.bool_(True), "head": None}]
    assert results.count_nonfinite(records) == 3
    safe = results.json_safe(records)
    text = json.dumps(safe, allow_nan=False)
    assert json.loads(text) == [{"method": "maml", "mse": None, "ci95": None, "steps": 3, "curve": [1.0, None],
                                 "ok": True, "head": None}]
    assert results.count_nonfinite(safe) == 0


def _tiny_sinusoid():
    cfg = config_lib.load_config("sinusoid", quick=True)
    cfg.data.num_train_tasks = 50
    cfg.train.methods = ("baseline",)
    cfg.train.num_steps = cfg.train.chunk_size = cfg.train.ckpt_every = cfg.train.val_every = 10
    cfg.train.meta_batch, cfg.train.pre_batch = 2, 10
    cfg.eval.num_tasks, cfg.eval.k_shots, cfg.eval.max_steps, cfg.train.val_tasks = 4, (5,), 2, 2
    return cfg


@pytest.mark.slow
def test_a_run_that_learns_nothing_stops_with_an_error_and_writes_no_results(tmp_path, monkeypatch):
    from omni_jax.algorithms import l2_pretrain
    from omni_jax.sinusoid import experiment

    def nan_pretrain(apply_fn, **kw):
        loss_fn = l2_pretrain(apply_fn, **kw)
        return lambda params, data, flow: (lambda lo: (lo[0] * jnp.nan, lo[1]))(loss_fn(params, data, flow))

    monkeypatch.setattr(sinusoid_train, "l2_pretrain", nan_pretrain)  # every loss NaN: every update skipped
    with pytest.raises(OmniJaxError, match="baseline: all 10 of its 10 training updates were skipped"):
        experiment.train_and_evaluate(_tiny_sinusoid(), tmp_path, show_progress=False, log=lambda m: None)
    assert not (tmp_path / "results.json").exists()


@pytest.mark.slow
def test_non_finite_evaluation_numbers_are_written_as_null(tmp_path):
    from omni_jax.sinusoid import experiment
    cfg = _tiny_sinusoid()
    cfg.eval.lr, cfg.eval.max_steps = 1e6, 4  # adaptation diverges at test time: the MSEs overflow
    lines = []
    experiment.train_and_evaluate(cfg, tmp_path, show_progress=False, log=lines.append)
    text = (tmp_path / "results.json").read_text()
    records = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in results.json"))
    assert any(r["mse"] is None for r in records), records
    assert any("non-finite value(s) in the results, written as null" in line for line in lines)


def test_a_nullable_field_takes_none_or_its_type():
    refs = config_lib.experiment_references("sinusoid")
    cfg = _changed(config_lib.load_config("sinusoid"), "train.task_chunk", None)
    config_lib.check_fields(cfg, "sinusoid", refs, nullable=("train.task_chunk",))
    with pytest.raises(OmniJaxError, match="train.task_chunk must be an integer, got None"):
        config_lib.check_fields(cfg, "sinusoid", refs)
    with pytest.raises(OmniJaxError, match=r"train.task_chunk must be an integer, got 1.5"):
        config_lib.check_fields(_changed(cfg, "train.task_chunk", 1.5), "sinusoid", refs, nullable=("train.task_chunk",))
