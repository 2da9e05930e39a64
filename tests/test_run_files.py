"""Run files: the guarded reads and writes (omni_jax.files), damaged metrics lines, reruns with fewer methods,
missing optional packages, checkpoint stores closed on every path out, and Ctrl-C."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax.numpy as jnp
import pytest

from omni_jax import cli, files
from omni_jax.errors import OmniJaxError
from omni_jax.training import runner
from omni_jax.training.checkpoint import CheckpointStore
from omni_jax.training.metrics import MetricsWriter

REPO = Path(__file__).resolve().parents[1]


def _usual_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# ---------------------------------------------------------------------------- omni_jax.files


def test_write_atomic_gives_the_usual_permissions_and_leaves_no_temporary(tmp_path):
    path = files.write_json(tmp_path / "a" / "b.json", {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}
    assert path.stat().st_mode & 0o777 == _usual_mode()
    assert sorted(p.name for p in path.parent.iterdir()) == ["b.json"]


@pytest.mark.parametrize("content,words", [(b"", "not valid JSON"), (b'{"a": ', "not valid JSON"),
                                           (b"\xff\xfe\x00garbage", "not UTF-8"), (b"[1, 2]", "not a dict")])
def test_read_json_names_the_file_and_the_problem(tmp_path, content, words):
    p = tmp_path / "c.json"
    p.write_bytes(content)
    with pytest.raises(OmniJaxError) as e:
        files.read_json(p, expect=dict)
    assert str(p) in str(e.value) and words in str(e.value) and "\n" not in str(e.value)


def test_paths_of_the_wrong_kind_are_one_line_errors(tmp_path):
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(OmniJaxError, match="it is a directory, not a file"):
        files.read_json(tmp_path / "dir.json")
    with pytest.raises(OmniJaxError, match="it is a directory, not a file"):
        files.write_atomic(tmp_path / "dir.json", "x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OmniJaxError, match=f"{tmp_path / 'file'} is a file, not a directory"):
        files.ensure_dir(tmp_path / "file" / "sub")
    with pytest.raises(OmniJaxError, match="is a file, not a directory"):
        files.write_atomic(tmp_path / "file" / "x.json", "x")
    with pytest.raises(OmniJaxError, match="is a file, not a directory"):
        files.check_writable(tmp_path / "file" / "new", create=False)
    with pytest.raises(OmniJaxError, match="it does not exist"):
        files.read_text(tmp_path / "missing.txt")


def test_a_full_disk_is_a_one_line_error_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = files.write_atomic(tmp_path / "r.json", "old")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OmniJaxError) as e:
        files.write_atomic(target, "new")
    assert "disk is full" in str(e.value) and str(target) in str(e.value) and "free some space" in str(e.value)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_directory_is_found_before_any_work(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        with pytest.raises(OmniJaxError, match="permission denied"):
            files.check_writable(d)
    finally:
        d.chmod(0o755)


# ---------------------------------------------------------------------------- metrics.jsonl


def test_damaged_metrics_lines_are_reported_and_kept_aside(tmp_path):
    warnings = []
    m = MetricsWriter(tmp_path / "metrics.jsonl", warn=warnings.append)
    for step in (1, 2, 3):
        m.write(step, {"loss": jnp.asarray(step * 0.5)})
    with open(m.path, "ab") as f:
        f.write(b'{"step": 4, "lo\n\xff\xfe\n')          # a line cut by a crash, then random bytes
    records, damaged = m.read_lines()
    assert [r["step"] for r in records] == [1, 2, 3] and damaged == [4, 5]
    m.truncate_after(2)
    assert len(warnings) == 1 and "2 damaged line(s) (line 4, 5)" in warnings[0] and "metrics.jsonl.damaged" in warnings[0]
    assert [json.loads(l)["step"] for l in m.path.read_text().splitlines()] == [1, 2]
    assert (tmp_path / "metrics.jsonl.damaged").read_bytes().endswith(b"\xff\xfe\n")
    assert m.path.stat().st_mode & 0o777 == _usual_mode()


# ---------------------------------------------------------------------------- the runner


def test_a_rerun_with_fewer_methods_keeps_the_others(tmp_path):
    from test_runner import Toy, toy_config
    exp = Toy()
    both = runner.train_and_evaluate(exp, toy_config(), tmp_path, show_progress=False, log=lambda s: None)
    assert [r["method"] for r in both] == ["a", "b"]
    logged = []
    exp2 = Toy()
    again = runner.train_and_evaluate(exp2, toy_config(**{"train.methods": "('b',)"}), tmp_path, show_progress=False,
                                      log=logged.append)
    # nothing trained (each method set up, to check its model against its checkpoint), the evaluation reused
    assert again == both and exp2.calls == [] and sorted(exp2.trained) == ["a", "b"]
    assert [json.loads(l)["step"] for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()] == [2, 4]
    assert any("keeping the finished a" in line for line in logged)
    # with another evaluation setting, the kept method is evaluated again with it, beside the rerun one
    exp3 = Toy()
    other = runner.train_and_evaluate(exp3, toy_config(**{"train.methods": "('b',)", "eval.offset": 1.0}), tmp_path,
                                      show_progress=False, log=lambda s: None)
    assert [r["method"] for r in other] == ["a", "b"] and exp3.calls == [["a", "b"]]
    assert [r["value"] for r in other] == pytest.approx([r["value"] + 1.0 for r in both])
    assert json.loads((tmp_path / "results.json").read_text()) == other


def test_the_work_directory_is_checked_before_any_work(tmp_path, capsys):
    from test_runner import Toy, toy_config
    files.mark_directory(tmp_path)                         # a work directory of omni-jax's
    (tmp_path / "results.json").mkdir()
    exp = Toy()
    with pytest.raises(OmniJaxError, match="results.json: it is a directory"):
        runner.train_and_evaluate(exp, toy_config(), tmp_path, show_progress=False, log=lambda s: None)
    assert exp.trained == []
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(OmniJaxError, match=f"{blocker} is a file, not a directory"):
        runner.train_and_evaluate(Toy(), toy_config(), blocker / "wd", show_progress=False, log=lambda s: None)
    (tmp_path / "results.json").rmdir()
    (tmp_path / "a").write_text("x")                       # a method's directory is a file
    with pytest.raises(OmniJaxError, match=f"{tmp_path / 'a'}"):
        runner.train_and_evaluate(Toy(), toy_config(), tmp_path, show_progress=False, log=lambda s: None)


@pytest.mark.slow
def test_every_checkpoint_store_is_closed_on_every_path_out(tmp_path, monkeypatch):
    """Classification (and every experiment) opens its stores in the runner only, and closes each one even
    when training or evaluation fails."""
    from omni_jax import config as config_lib
    from omni_jax.classification import experiment as cls_exp
    opened, closed = [], []
    init, close = CheckpointStore.__init__, CheckpointStore.close

    def counting_init(self, *a, **k):
        init(self, *a, **k)
        opened.append(self)

    def counting_close(self):
        closed.append(self)
        close(self)

    monkeypatch.setattr(CheckpointStore, "__init__", counting_init)
    monkeypatch.setattr(CheckpointStore, "close", counting_close)
    from test_classification_train import SMALL
    cfg = config_lib.apply_overrides(config_lib.load_config("classify_synthetic", quick=True),
                                     [a.removeprefix("--config.") for a in SMALL if a.startswith("--config.")]
                                     + ["train.methods=('protonet',)"])

    def broken(self, trained):
        raise OmniJaxError("evaluation failed on purpose")

    monkeypatch.setattr(cls_exp._Evaluator, "__call__", broken)
    with pytest.raises(OmniJaxError, match="on purpose"):
        cls_exp.train_and_evaluate(cfg, tmp_path, show_progress=False, log=lambda s: None)
    assert opened and set(map(id, opened)) == set(map(id, closed))


# ---------------------------------------------------------------------------- missing optional packages


def _hide(monkeypatch, top: str, *also: str) -> None:
    """Simulates an install without ``top``: importing it fails, and modules that imported it are reloaded."""
    for name in list(sys.modules):
        if name == top or name.startswith(top + ".") or any(name.startswith(a) for a in also):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, top, None)


def test_rl_without_brax_says_what_to_install(tmp_path, monkeypatch, capsys):
    _hide(monkeypatch, "brax", "omni_jax.rl")
    code = cli.main(["rl", "--env", "navigation2d", "--quick", "--no-progress", "--workdir", str(tmp_path / "wd")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "'brax'" in err and "pip install 'omni-jax[rl]'" in err, err
    assert not (tmp_path / "wd").exists()


def test_classify_without_the_data_extras_says_what_to_install(tmp_path, monkeypatch, capsys):
    from test_damage import CLASSIFY, _mini
    data = _mini(tmp_path / "mini")
    _hide(monkeypatch, "PIL")
    code = cli.main(CLASSIFY + ["--data-dir", str(data), "--workdir", str(tmp_path / "wd")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "'PIL'" in err and "pip install 'omni-jax[data]'" in err, err


# ---------------------------------------------------------------------------- Ctrl-C


@pytest.mark.slow
def test_ctrl_c_in_the_glyph_builders_pool_ends_promptly(tmp_path):
    """The workers sleep a minute per item: joining the pool would wait for them; terminating it does not."""
    code = textwrap.dedent("""
        import signal, sys, time
        from omni_jax.glyphs.build import _map
        def interrupt(*_):
            raise KeyboardInterrupt
        signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, 3.0)
        try:
            _map(time.sleep, [60.0] * 4, workers=2)
        except KeyboardInterrupt:
            import multiprocessing
            alive = [p for p in multiprocessing.active_children() if p.is_alive()]
            sys.exit(130 if not alive else 3)
        sys.exit(4)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=45)
    assert proc.returncode == 130, proc.stderr[-2000:]


@pytest.mark.slow
def test_ctrl_c_in_training_exits_130_and_the_rerun_gives_the_same_results(tmp_path):
    from test_damage import SINUSOID
    args = [a for a in SINUSOID if "num_steps" not in a and "ckpt_every" not in a] + [
        "--config.train.num_steps=1200", "--config.train.ckpt_every=200"]
    full = tmp_path / "full"
    subprocess.run([sys.executable, "-m", "omni_jax.cli", *args, "--workdir", str(full)], cwd=REPO, check=True,
                   capture_output=True, timeout=600)
    wd = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "omni_jax.cli", *args, "--workdir", str(wd)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:                                  # the run has started once it says so
        if "workdir" in line:
            break
    while not (wd / "maml" / "metrics.jsonl").exists() and proc.poll() is None:   # training, not compiling
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, err[-2000:])
    assert "interrupted" in err and "Traceback" not in err
    rerun = subprocess.run([sys.executable, "-m", "omni_jax.cli", *args, "--workdir", str(wd)], cwd=REPO,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert json.loads((wd / "results.json").read_text()) == json.loads((full / "results.json").read_text())


# ---------------------------------------------------------------------------- checkpoints checked before use


def _two_steps(directory):
    store = CheckpointStore(directory, {"x": 1}, warn=lambda m: None)
    for step in (2, 4):
        store.save(step, {"w": jnp.full(3, float(step)), "step": jnp.asarray(step)})
    store.close()
    return {"w": jnp.zeros(3), "step": jnp.asarray(0)}


def test_a_damaged_newest_step_is_set_aside_and_the_previous_one_restored(tmp_path):
    target = _two_steps(tmp_path / "ck")
    shard = next(p for p in sorted((tmp_path / "ck" / "4").rglob("*")) if p.is_file() and p.stat().st_size > 16
                 and p.name != "omni_jax_files.json")
    shard.write_bytes(shard.read_bytes()[::-1])              # same size, other bytes
    warnings = []
    store = CheckpointStore(tmp_path / "ck", {"x": 1}, warn=warnings.append)
    assert "does not hold the bytes that were saved" in store.verify(4) and store.verify(2) is None
    step, state = store.restore_latest(target)
    assert step == 2 and float(state["w"][0]) == 2.0
    assert len(warnings) == 1 and "checkpoints.damaged" in warnings[0] and str(shard) in warnings[0]
    assert (tmp_path / "checkpoints.damaged" / "4").is_dir() and not (tmp_path / "ck" / "4").exists()
    store.save(4, {"w": jnp.full(3, 4.5), "step": jnp.asarray(4)})     # the step is written again
    assert store.restore_latest(target)[0] == 4 and store.verify(4) is None
    store.close()


def test_when_every_step_is_damaged_it_is_an_error_and_nothing_moves(tmp_path):
    target = _two_steps(tmp_path / "ck")
    for step in (2, 4):
        (tmp_path / "ck" / str(step) / "_CHECKPOINT_METADATA").write_text("")
    before = sorted(str(p) for p in (tmp_path / "ck").rglob("*"))
    store = CheckpointStore(tmp_path / "ck", {"x": 1}, warn=lambda m: None)
    with pytest.raises(OmniJaxError, match=r"every checkpoint in .* is damaged .*; move .* aside to train from"):
        store.restore_latest(target)
    store.close()
    assert sorted(str(p) for p in (tmp_path / "ck").rglob("*")) == before


def test_a_damaged_config_record_is_checked_against_the_steps_records(tmp_path):
    _two_steps(tmp_path / "ck")
    (tmp_path / "ck" / "config.json").write_bytes(b"\x00garbage")
    warnings = []
    assert CheckpointStore.peek(tmp_path / "ck", {"x": 1}) == 4                       # the same config: fine
    with pytest.raises(OmniJaxError, match="incompatible config"):
        CheckpointStore(tmp_path / "ck", {"x": 2}, warn=warnings.append)             # another: still refused
    (tmp_path / "ck" / "config.json").unlink()
    with pytest.raises(OmniJaxError, match="incompatible config"):
        CheckpointStore.peek(tmp_path / "ck", {"x": 2})


def test_an_emptied_newest_step_falls_back_to_the_intact_earlier_one(tmp_path):
    """An emptied step directory has no record of its files; its restore fails, and the failure must
    not leave orbax's manager unable to restore the intact earlier step (it did: regression)."""
    import shutil
    import jax.numpy as jnp
    from omni_jax.training import CheckpointStore
    state = {"w": jnp.arange(3.0), "b": {"c": jnp.ones(2)}}
    store = CheckpointStore(tmp_path / "ck", {"a": 1})
    store.save(1, state)
    store.save(2, {"w": state["w"] + 1, "b": state["b"]})
    store.close()
    for p in (tmp_path / "ck" / "2").iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    warnings = []
    store = CheckpointStore(tmp_path / "ck", {"a": 1}, warn=warnings.append)
    try:
        step, restored = store.restore_latest(state)
    finally:
        store.close()
    assert step == 1 and float(restored["w"][1]) == 1.0
    assert len(warnings) == 1 and "ck/2 is damaged" in warnings[0]
    assert [q.name for q in tmp_path.glob("*.damaged/*")] == ["2"]
