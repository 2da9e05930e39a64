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
    assert len([line for line in err.splitlines() if line.startswith("omni-jax")]) == 1
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
