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
