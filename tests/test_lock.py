"""One run per work directory: an advisory lock that dies with its process."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omni_jax import files
from omni_jax.errors import OmniJaxError
from omni_jax.training import runner

from test_runner import Toy, quiet, toy_config

REPO = Path(__file__).resolve().parents[1]


def hold(directory, shared=False):
    """Another process holding the lock of ``directory`` until it is killed; returns the process."""
    code = (f"import sys, time; from omni_jax import files\n"
            f"with files.run_lock({str(directory)!r}, shared={shared}):\n"
            f"    print('held', flush=True); time.sleep(120)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_second_run_stops_at_once_naming_the_holder_and_a_killed_holder_leaves_no_lock(tmp_path):
    holder = hold(tmp_path)
    try:
        toy = Toy()
        t0 = time.monotonic()
        with pytest.raises(OmniJaxError, match=rf"work directory {tmp_path} is in use by another omni-jax run "
                                               rf"\(process {holder.pid}\)"):
            runner.train_and_evaluate(toy, toy_config(), tmp_path, **quiet())
        assert toy.trained == [] and not (tmp_path / "a").exists()      # nothing set up, nothing written
        assert time.monotonic() - t0 < 30
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    records = runner.train_and_evaluate(Toy(), toy_config(), tmp_path, **quiet())   # no stale lock
    assert [r["method"] for r in records] == ["a", "b"]


def test_train_only_runs_share_the_folder_but_never_a_method(tmp_path):
    """The documented workflow, one --train-only process per method, still works; two processes
    training the same method, or a full run beside them, do not."""
    holder = hold(tmp_path, shared=True)          # another --train-only run (which marked the folder as omni-jax's)
    files.mark_directory(tmp_path)
    method_holder = hold(tmp_path / "a")          # ... training method a
    try:
        with pytest.raises(OmniJaxError, match="the folder of a .* is in use"):
            runner.train_and_evaluate(Toy(), toy_config(), tmp_path, **quiet(train_only=True))
        assert runner.train_and_evaluate(Toy(), toy_config(**{"train.methods": ("b",)}), tmp_path,
                                         **quiet(train_only=True)) is None   # b beside it: fine
        with pytest.raises(OmniJaxError, match="is in use by another omni-jax run"):
            runner.train_and_evaluate(Toy(), toy_config(**{"train.methods": ("b",)}), tmp_path, **quiet())
    finally:
        for p in (holder, method_holder):
            p.send_signal(signal.SIGKILL)
            p.wait()


def test_a_lock_file_replaced_by_a_directory_is_a_one_line_error(tmp_path):
    (tmp_path / files.LOCK).mkdir()
    with pytest.raises(OmniJaxError, match=rf"cannot open the lock file {tmp_path / files.LOCK}"):
        with files.run_lock(tmp_path):
            pass


@pytest.mark.slow
def test_two_command_line_runs_started_together(tmp_path):
    """Two ``omni-jax sinusoid`` processes in one folder: one trains, the other stops at once with
    one line and exit status 2; the results are the winner's, logged once."""
    argv = [sys.executable, "-m", "omni_jax.cli", "sinusoid", "--quick", "--no-progress", "--workdir", str(tmp_path),
            "--config.train.methods=('maml',)", "--config.train.num_steps=200", "--config.train.chunk_size=50",
            "--config.train.ckpt_every=100", "--config.train.val_every=100", "--config.data.num_train_tasks=100",
            "--config.eval.num_tasks=4", "--config.train.val_tasks=4", "--config.eval.k_shots=(5,)"]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = outs[[p.returncode for p in procs].index(2)]
    err_lines = [line for line in loser[1].splitlines() if line.strip()]
    assert len(err_lines) == 1 and "is in use by another omni-jax run (process" in err_lines[0]
    steps = [json.loads(line)["step"] for line in (tmp_path / "maml" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [50, 100, 150, 200]                                   # logged once
    assert json.loads((tmp_path / "results.json").read_text())
