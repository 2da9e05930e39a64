"""The damage matrix: a finished work directory of each experiment, damaged one path and one way at a time.

For ``sinusoid``, ``rl --env navigation2d`` and ``classify`` (on a small fixture dataset in mini-ImageNet's
CSV layout) one quick run makes a work directory. Then, for every file and directory in it and each damage
(emptied, cut in half, overwritten with random bytes, replaced by a directory or by a file, deleted, made
unreadable), the same command runs again, in this process through the CLI's ``main``, on a copy. Each case
must end either

* in a one-line error, exit status 2, that names the damaged path, with ``results.json`` as it was before
  the rerun, or
* in a recovery, exit status 0, whose ``results.json`` equals the undamaged run's,

never in a traceback. "Made unreadable" is skipped when the tests run as root, who reads anything.

A second matrix damages the newest checkpoint step's files with ``results.json`` deleted, so the rerun must
restore from the checkpoints (falling back to the earlier step, training the last steps again).

Everything that needs a finished run (the whole matrix, a representative subset, the interrupted runs)
runs with ``--slow``, as the end-to-end tests do; the everyday suite keeps the damaged dataset files.
"""
from __future__ import annotations

import csv
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from omni_jax import cli

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False

SINUSOID = ["sinusoid", "--quick", "--no-progress", "--config.train.methods=('maml',)",
            "--config.train.num_steps=100", "--config.train.chunk_size=50", "--config.train.ckpt_every=50",
            "--config.train.val_every=50", "--config.data.num_train_tasks=100", "--config.eval.num_tasks=4",
            "--config.train.val_tasks=4", "--config.eval.k_shots=(5,)"]
RL = ["rl", "--env", "navigation2d", "--quick", "--no-progress", "--config.train.methods=('maml',)",
      "--config.env.horizon=5", "--config.train.num_steps=4", "--config.train.meta_batch=2",
      "--config.train.num_traj=3", "--config.train.chunk_size=2", "--config.train.ckpt_every=2",
      "--config.eval.num_tasks=4", "--config.eval.task_chunk=4", "--config.eval.num_traj=3",
      "--config.eval.max_steps=1", "--config.policy.widths=(8,)"]
CLASSIFY = ["classify", "--dataset", "miniimagenet", "--method", "protonet", "--no-progress",
            "--config.model.width=4", "--config.model.depth=2", "--config.data.image_size=8",
            "--config.train.num_steps=4", "--config.train.chunk_size=2", "--config.train.ckpt_every=2",
            "--config.train.val_every=2", "--config.train.val_tasks=2", "--config.train.n_way=3",
            "--config.train.k_shot=1", "--config.train.n_query=2", "--config.eval.n_query=2",
            "--config.train.batch_size=6", "--config.eval.num_tasks=4", "--config.eval.settings=((3, 1),)"]


def _mini(root: Path, classes: int = 4, per_class: int = 4) -> Path:
    """A tiny dataset in mini-ImageNet's layout: images/ and train/val/test.csv."""
    from PIL import Image
    rng = np.random.default_rng(0)
    for s, split in enumerate(("train", "val", "test")):
        rows = [("filename", "label")]
        for c in range(classes):
            for k in range(per_class):
                name = f"{split}{c}_{k}.png"
                (root / "images").mkdir(parents=True, exist_ok=True)
                a = rng.integers(0, 40, (8, 8, 3), dtype=np.uint8) + np.uint8(50 * c)
                Image.fromarray(a).save(root / "images" / name)
                rows.append((name, f"n{s}{c}"))
        with open(root / f"{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
    return root


def _argv(name: str, workdir: Path, data: Path | None) -> list:
    base = {"sinusoid": SINUSOID, "rl": RL, "classify": CLASSIFY}[name]
    extra = ["--data-dir", str(data)] if name == "classify" else []
    return base + extra + ["--workdir", str(workdir)]


def run_cli(capsys, argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory):
    """Reruns compile the same programs again: a persistent compilation cache makes them quick."""
    old = {k: getattr(jax.config, k) for k in ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
                                           "jax_persistent_cache_min_entry_size_bytes")}
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    yield
    for k, v in old.items():
        jax.config.update(k, v)


_RUNS = {}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, compile_cache):
    """``finished(name)``: (argv builder, the finished work directory, its results), one run per experiment."""
    data = _mini(tmp_path_factory.mktemp("mini"))

    def get(name):
        if name not in _RUNS:
            wd = tmp_path_factory.mktemp(f"{name}_run") / "wd"
            assert cli.main(_argv(name, wd, data)) == 0
            _RUNS[name] = (lambda w: _argv(name, w, data), wd, json.loads((wd / "results.json").read_text()))
        return _RUNS[name]

    yield get
    _RUNS.clear()


# ---------------------------------------------------------------------------- the damages

FILE_DAMAGES = ("emptied", "cut_in_half", "random_bytes", "replaced_by_directory", "deleted", "unreadable")
DIR_DAMAGES = ("emptied", "replaced_by_file", "deleted", "unreadable")


def damage(path: Path, how: str, seed: int = 0) -> None:
    if path.is_dir():
        if how == "emptied":
            for child in path.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        elif how == "replaced_by_file":
            shutil.rmtree(path)
            path.write_bytes(b"not a directory\n")
        elif how == "deleted":
            shutil.rmtree(path)
        elif how == "unreadable":
            path.chmod(0)
        else:
            raise ValueError(how)
        return
    data = path.read_bytes()
    if how == "emptied":
        path.write_bytes(b"")
    elif how == "cut_in_half":
        path.write_bytes(data[:len(data) // 2])
    elif how == "random_bytes":
        path.write_bytes(random.Random(f"{path.name}{seed}").randbytes(max(len(data), 16)))
    elif how == "replaced_by_directory":
        path.unlink()
        path.mkdir()
        (path / "x").write_text("x")
    elif how == "deleted":
        path.unlink()
    elif how == "unreadable":
        path.chmod(0)
    else:
        raise ValueError(how)


def paths_of(workdir: Path) -> list:
    return sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*"))


def cases_for(workdir: Path, only=None) -> list:
    out = []
    for rel in paths_of(workdir):
        if only is not None and not only(rel):
            continue
        for how in (DIR_DAMAGES if (workdir / rel).is_dir() else FILE_DAMAGES):
            if how == "unreadable" and ROOT:
                continue   # root reads anything: no damage (the case is skipped, not counted)
            out.append((rel, how))
    return out


def _restore_permissions(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        if not p.is_symlink():
            p.chmod(0o755 if p.is_dir() else 0o644)


def check_case(capsys, tmp_path, finished_run, rel: str, how: str, drop_results: bool = False):
    """Damages ``rel`` in a copy of the finished work directory, reruns, and checks the contract.
    Returns ``"recovered"`` or ``"error"``."""
    argv_for, original, records = finished_run
    wd = tmp_path / "wd"
    shutil.copytree(original, wd)
    if drop_results:
        (wd / "results.json").unlink()
    target = wd / rel
    if how == "unreadable" and ROOT:
        pytest.skip("running as root, who can read anything: 'made unreadable' is no damage")
    damage(target, how)
    before = (wd / "results.json").read_bytes() if (wd / "results.json").is_file() else None
    try:
        code, out, err = run_cli(capsys, argv_for(wd))
    finally:
        _restore_permissions(wd)
    assert "Traceback" not in err and "Traceback" not in out, err[-3000:]
    if code == 0:
        assert "omni-jax: error" not in err
        assert json.loads((wd / "results.json").read_text()) == records, f"{rel} {how}: results differ"
        return "recovered"
    assert code == 2, (code, err[-2000:])
    if os.environ.get("DAMAGE_LOG"):
        print(f"{rel} {how}: {err.strip()[-400:]}", file=sys.__stderr__, flush=True)
    lines = [line for line in err.splitlines() if line.startswith("omni-jax: error:")]
    assert len(lines) == 1, err
    named = [str(target)] + [str(p) for p in target.parents if p != wd and wd in p.parents]
    assert any(n in lines[0] for n in named), f"the error does not name {target}: {lines[0]}"
    after = (wd / "results.json").read_bytes() if (wd / "results.json").is_file() else None
    assert after == before or (after is not None and json.loads(after) == records), "results.json was replaced"
    return "error"


@pytest.mark.slow
def test_every_file_of_a_run_gets_the_usual_permissions(finished):
    """0o666 less the umask, as ``open`` gives: not the owner-only mode of a temporary file."""
    umask = os.umask(0)
    os.umask(umask)
    _, wd, _ = finished("sinusoid")
    modes = {str(p.relative_to(wd)): p.stat().st_mode & 0o777 for p in wd.rglob("*") if p.is_file()}
    assert {"results.json", "evaluation.json", "maml/metrics.jsonl", "maml/checkpoints/config.json",
            "fig5_mse_vs_steps.png"} <= set(modes)
    assert {k: v for k, v in modes.items() if v != 0o666 & ~umask} == {}


# ---------------------------------------------------------------------------- a representative subset


def _representative(rel: str) -> bool:
    parts = Path(rel).parts
    return (len(parts) == 1                                      # results, evaluation, figures, dirs
            or parts[-1] in ("metrics.jsonl", "config.json", "checkpoints")
            or (len(parts) == 3 and parts[1] == "checkpoints")   # the step directories
            or parts[-1] in ("manifest.ocdbt", "_CHECKPOINT_METADATA") and len(parts) <= 5)


@pytest.mark.slow
def test_sinusoid_damage_subset(capsys, tmp_path, finished):
    """The everyday suite's share of the matrix: each representative path with one damage, the damages taken
    in turn so that every kind occurs; results.json and evaluation.json get every content damage."""
    run = finished("sinusoid")
    kinds = [h for h in FILE_DAMAGES if h != "unreadable" or not ROOT]
    dir_kinds = [h for h in DIR_DAMAGES if h != "unreadable" or not ROOT]
    chosen = [(rel, h) for rel in ("results.json", "evaluation.json") for h in ("emptied", "cut_in_half",
                                                                                 "random_bytes", "deleted")]
    others = [rel for rel in paths_of(run[1]) if _representative(rel) and rel not in ("results.json", "evaluation.json")]
    n_file = n_dir = 0
    for rel in others:
        if (run[1] / rel).is_dir():
            chosen.append((rel, dir_kinds[n_dir % len(dir_kinds)]))
            n_dir += 1
        else:
            chosen.append((rel, kinds[n_file % len(kinds)]))
            n_file += 1
    outcomes = {}
    for i, (rel, how) in enumerate(chosen):
        case = tmp_path / f"case{i}"
        case.mkdir()
        outcomes[(rel, how)] = check_case(capsys, case, run, rel, how)
    assert {h for _, h in chosen} == set(kinds) | set(dir_kinds)
    assert all(outcomes[(f, h)] == "recovered" for f in ("results.json", "evaluation.json")
               for h in ("emptied", "cut_in_half", "random_bytes", "deleted"))


# ---------------------------------------------------------------------------- slow: every path, every damage


def _all_cases(name):
    """Cases are listed from a throwaway layout when collecting: the real run happens in the fixture."""
    return [(name, how) for how in sorted(set(FILE_DAMAGES) | set(DIR_DAMAGES))]


@pytest.mark.slow
@pytest.mark.parametrize("name,how", _all_cases("sinusoid") + _all_cases("rl") + _all_cases("classify"))
def test_damage_matrix(capsys, tmp_path, finished, name, how):
    run = finished(name)
    if how == "unreadable" and ROOT:
        pytest.skip("running as root, who can read anything: 'made unreadable' is no damage")
    outcomes, failures = [], []
    for i, (rel, h) in enumerate(cases_for(run[1])):
        if h != how:
            continue
        case = tmp_path / f"case{i}"
        case.mkdir()
        try:
            outcomes.append((rel, check_case(capsys, case, run, rel, h)))
        except AssertionError as e:
            failures.append(f"{rel}: {str(e)[:400]}")
        if os.environ.get("DAMAGE_LOG"):
            print(f"{name} {rel} {h}: {outcomes[-1][1] if outcomes and outcomes[-1][0] == rel else 'FAILED'}",
                  file=sys.__stderr__, flush=True)
    assert not failures, "\n".join(failures)
    recovered = [rel for rel, o in outcomes if o == "recovered"]
    print(f"{name} {how}: {len(outcomes)} cases, {len(recovered)} recovered")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sinusoid", "rl", "classify"])
def test_damaged_newest_step_falls_back_to_the_earlier_one(capsys, tmp_path, finished, name):
    run = finished(name)
    method = next(p.name for p in run[1].iterdir() if (p / "checkpoints").is_dir())
    steps = sorted(int(p.name) for p in (run[1] / method / "checkpoints").iterdir() if p.name.isdigit())
    newest = f"{method}/checkpoints/{steps[-1]}"
    rng = random.Random(f"fallback {name}")     # 8 paths, one damage each, drawn from a seed
    by_path = {}
    for rel, how in cases_for(run[1], lambda rel: rel.startswith(newest + "/") or rel == newest):
        by_path.setdefault(rel, []).append(how)
    cases = [(rel, rng.choice(hows)) for rel, hows in sorted(rng.sample(sorted(by_path.items()), 8))]
    outcomes = []
    for i, (rel, how) in enumerate(cases):
        case = tmp_path / f"case{i}"
        case.mkdir()
        outcomes.append(check_case(capsys, case, run, rel, how, drop_results=True))
    assert outcomes and set(outcomes) <= {"recovered"}, outcomes


# ---------------------------------------------------------------------------- interrupted runs


def _subprocess_argv(argv):
    return [sys.executable, "-m", "omni_jax.cli", *argv]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sinusoid", "rl", "classify"])
def test_runs_interrupted_at_random_moments_resume_to_the_same_results(tmp_path, finished, name):
    """SIGINT and SIGKILL at moments drawn from a seed over an uninterrupted run's duration (compilation,
    training, evaluation, writing the results); the rerun of the same command gives the same results."""
    import signal
    import subprocess
    argv_for, _, records = finished(name)
    env = dict(os.environ, MPLBACKEND="Agg")
    repo = Path(__file__).resolve().parents[1]
    t0 = time.perf_counter()
    full = subprocess.run(_subprocess_argv(argv_for(tmp_path / "full")), cwd=repo, env=env, capture_output=True,
                          text=True, timeout=900)
    duration = time.perf_counter() - t0
    assert full.returncode == 0, full.stderr[-2000:]
    assert json.loads((tmp_path / "full" / "results.json").read_text()) == records
    rng = random.Random(f"interrupt {name}")
    for i, sig in enumerate([signal.SIGINT, signal.SIGKILL]):
        wd = tmp_path / f"cut{i}"
        at = rng.uniform(0.05, 1.0) * duration
        proc = subprocess.Popen(_subprocess_argv(argv_for(wd)), cwd=repo, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=at)
        except subprocess.TimeoutExpired:
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=300)
        assert "Traceback" not in err, err[-3000:]
        if sig == signal.SIGINT:
            assert proc.returncode in (0, 130), (at, proc.returncode, err[-2000:])
        again = subprocess.run(_subprocess_argv(argv_for(wd)), cwd=repo, env=env, capture_output=True, text=True,
                               timeout=900)
        assert again.returncode == 0 and "Traceback" not in again.stderr, (at, again.stderr[-2000:])
        assert json.loads((wd / "results.json").read_text()) == records, f"{sig.name} at {at:.1f}s"


# ---------------------------------------------------------------------------- the data directory


@pytest.mark.parametrize("rel,how", [("train.csv", "random_bytes"), ("val.csv", "replaced_by_directory"),
                                     ("images", "replaced_by_file")]
                         + [pytest.param(rel, how, marks=pytest.mark.slow)
                            for rel in ("train.csv", "val.csv", "test.csv") for how in FILE_DAMAGES
                            if how != "unreadable" or not ROOT]
                         + [pytest.param("images", how, marks=pytest.mark.slow) for how in ("emptied", "deleted")])
def test_a_damaged_dataset_is_a_one_line_error_naming_the_file(capsys, tmp_path, rel, how):
    data = _mini(tmp_path / "mini")
    damage(data / rel, how)
    try:
        code, out, err = run_cli(capsys, _argv("classify", tmp_path / "wd", data))
    finally:
        _restore_permissions(data)
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert err.startswith("omni-jax: error:") and err.count("\n") == 1 and str(data) in err, err
    assert not (tmp_path / "wd" / "results.json").exists()
