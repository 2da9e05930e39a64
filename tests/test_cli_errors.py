"""The command line's one-line errors for malformed arguments."""
import pytest

from omni_jax import cli


@pytest.mark.parametrize("args,message", [
    (["sinusoid", "--config.train.num_steps", "300"],
     "--config.train.num_steps 300: write it as --config.train.num_steps=300"),
    (["sinusoid", "--workdir", ""], "argument --workdir: an empty work directory name"),
    (["sinusoid", "--workdir", "  "], "argument --workdir: an empty work directory name"),
    (["classify", "--dataset", "nope"], "config field data.dataset: unknown dataset 'nope'"),
])
def test_malformed_arguments_are_one_line_errors(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    try:
        code = cli.main(args)
    except SystemExit as e:   # argparse's usage errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert err.count("\n") == 1 and err.startswith("omni-jax")     # one line: no usage block
    assert not any(tmp_path.iterdir())   # nothing made, not even the default work directory


@pytest.mark.parametrize("config", ["sinusoid", "rl_navigation2d", "classify_synthetic"])
def test_one_test_task_gives_no_confidence_interval(config):
    """Every result is reported with a 95% CI over the test tasks: one task is refused up front,
    not printed as ±0 (as if certain)."""
    from omni_jax import config as config_lib
    from omni_jax.errors import OmniJaxError
    check = {"sinusoid": "omni_jax.sinusoid.train", "rl_navigation2d": "omni_jax.rl.train",
             "classify_synthetic": "omni_jax.classification.experiment"}[config]
    import importlib
    if config.startswith("rl"):
        pytest.importorskip("brax")
    cfg = config_lib.apply_overrides(config_lib.load_config(config, quick=True), ["eval.num_tasks=1"])
    with pytest.raises(OmniJaxError, match="eval.num_tasks must be at least 2 .*got 1"):
        importlib.import_module(check).check(cfg)


def test_a_quick_run_has_its_own_default_work_directory():
    import argparse
    args = argparse.Namespace(workdir=None, quick=True)
    assert cli.default_workdir(args, "runs/sinusoid") == "runs/sinusoid_quick"
    assert cli.default_workdir(args, "runs/rl_navigation2d_quick") == "runs/rl_navigation2d_quick"
    assert cli.default_workdir(argparse.Namespace(workdir=None, quick=False), "runs/sinusoid") == "runs/sinusoid"
    assert cli.default_workdir(argparse.Namespace(workdir="mine", quick=True), "runs/sinusoid") == "mine"


def _metrics(path, losses):
    import json
    path.write_text("".join(json.dumps({"step": 10 * (i + 1), "loss/total": v}) + "\n" for i, v in enumerate(losses)))
    return path


@pytest.mark.parametrize("losses,message", [
    ([4.0, 2.0, 1.0], None),
    ([0.01, 0.5, 0.9], None),                                # near zero, ordinary noise: floored at 1
    ([4.0, 40.0, 4000.0], "grew from 4 at step 10 to 4000 at step 30: it diverged"),
    ([4.0, 3.0, None], "was not finite at step 30"),
    ([-2.0, -5.0, -900.0], "grew from -2 at step 10 to -900"),
])
def test_a_diverged_training_is_named(tmp_path, losses, message):
    from omni_jax.training.results import divergence
    why = divergence(_metrics(tmp_path / "metrics.jsonl", losses))
    assert (why is None) if message is None else (message in why)


def test_the_runner_warns_and_the_records_say_so(tmp_path):
    """A method whose loss grew by orders of magnitude: a warning on the terminal and in its records."""
    import jax.numpy as jnp
    from omni_jax.training import runner
    from test_runner import Toy, quiet, toy_config

    def growing_step(state, data):
        params = state.params * 10.0 + 1.0
        return state.replace(step=state.step + 1, params=params), {"loss/total": jnp.sum(params)}

    class Growing(Toy):
        def setup(self, cfg, method, context, mesh):
            program = super().setup(cfg, method, context, mesh)
            if method == "b":
                program.chunk = type(program.chunk)(growing_step, cfg.train.chunk_size)
            return program

    logged = []
    records = runner.train_and_evaluate(Growing(), toy_config(**{"train.num_steps": 6}), tmp_path,
                                        **dict(quiet(), log=logged.append))
    assert [r.get("warning") is not None for r in records] == [False, True]
    assert any("warning: b: its training loss (loss/total) grew from" in line for line in logged)
    again = []   # reprinted from results.json: the warning again
    runner.train_and_evaluate(Growing(), toy_config(**{"train.num_steps": 6}), tmp_path, **dict(quiet(), log=again.append))
    assert any("warning: b:" in line for line in again)


def test_ctrl_c_says_what_a_rerun_does_for_each_command(tmp_path, monkeypatch, capsys):
    """A training command resumes from its last checkpoint; ``data glyphs`` has nothing to resume and says so."""
    from omni_jax import cli
    from omni_jax.glyphs import build

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "build", interrupted)
    assert cli.main(["data", "glyphs", "--out", str(tmp_path / "g")]) == 130
    err = capsys.readouterr().err
    assert err == cli.INTERRUPTED_BY_COMMAND["data"] and "resume" not in err and "start it over" in err
    assert not (tmp_path / "g").exists()
    import omni_jax.sinusoid
    monkeypatch.setattr(omni_jax.sinusoid, "train_and_evaluate", interrupted)
    assert cli.main(["sinusoid", "--quick", "--workdir", str(tmp_path / "s")]) == 130
    assert capsys.readouterr().err == cli.INTERRUPTED


def test_a_run_that_blows_up_in_its_first_chunk_is_caught(tmp_path):
    """``train.outer_lr=1e6``: already huge at the first record (a chunk's mean); the start is the loss
    of the first step, before any update (``loss/first_step``), which every chunk logs."""
    from omni_jax.training.loop import Chunk, TrainState
    from omni_jax.training.results import divergence
    import jax.numpy as jnp

    def exploding(state, data):   # the loss multiplies by 1e4 each step
        loss = 5.0 * 1e4 ** state.step.astype(jnp.float32)
        return state.replace(step=state.step + 1), {"loss/total": loss}

    state = TrainState(step=jnp.zeros((), jnp.int32), params=(), opt_state=(), rng=jnp.zeros(2, jnp.uint32))
    for scan in (True, False):
        _, m = Chunk(exploding, 3, scan=scan)(state)
        assert float(m["loss/first_step"]) == 5.0 and float(m["loss/total"]) > 1e8
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 3, "loss/total": 1.7e8, "loss/first_step": 5.0}\n'
                    '{"step": 6, "loss/total": 2e20, "loss/first_step": 5e12}\n')
    assert "grew from 5 at step 0 to 2e+20 at step 6" in divergence(path)
    path.write_text('{"step": 3, "loss/total": 1.7e8}\n{"step": 6, "loss/total": 2e8}\n')   # from before the field
    assert divergence(path) is None
