"""The work directory is the user's data: storage failures end in one line, and a run writes only
into a folder it made.

Each place a run cannot use is refused before any work, with its real cause (an empty name, a name
or a path too long, a dangling symbolic link or a loop of them, a file in the way, /proc or /sys,
a read-only file system, a full disk, a quota); a folder that omni-jax did not make and that is not
empty is refused, naming what the run would have overwritten. Where the machine lets the tests
mount a small tmpfs (root with CAP_SYS_ADMIN), a full and a read-only file system are real ones;
elsewhere those cases are skipped. The everyday suite keeps the checks that need no training; the
runs through the CLI's ``main`` run with ``--slow``.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from omni_jax import cli, files
from omni_jax.errors import OmniJaxError

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False

SINUSOID = ["sinusoid", "--quick", "--no-progress", "--config.train.methods=('maml','omni')",
            "--config.train.num_steps=100", "--config.train.chunk_size=50", "--config.train.ckpt_every=50",
            "--config.train.val_every=50", "--config.data.num_train_tasks=100", "--config.eval.num_tasks=4",
            "--config.train.val_tasks=4", "--config.eval.k_shots=(5,)"]


def run_cli(capsys, *args):
    """``omni-jax ARGS`` in this process: ``(exit status, stdout, stderr)``."""
    capsys.readouterr()
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@contextlib.contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False):
    """A small tmpfs mounted at ``path`` for the block; skips the test where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    except OSError:
        pytest.skip("no mount command here")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode(errors='replace').strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True, capture_output=True)


# ---------------------------------------------------------------------------- places, before any work


def test_an_empty_name_is_refused():
    with pytest.raises(OmniJaxError, match="an empty work directory name"):
        files.check_place("")


def test_a_name_longer_than_the_file_system_allows(tmp_path):
    long = tmp_path / ("a" * 300)
    with pytest.raises(OmniJaxError, match=r"the name a+\.\.\. has 300 bytes, more than the 255 .*choose a "
                                           r"shorter path"):
        files.check_place(long)


def test_a_path_whose_files_would_be_too_long(tmp_path):
    deep = tmp_path.joinpath(*["b" * 200] * 20)   # each name fits, the whole does not
    with pytest.raises(OmniJaxError, match=r"the path has \d+ bytes; with the files a run writes below it, more "
                                           r"than the 4096"):
        files.check_place(deep)
    files.check_place(tmp_path / ("c" * 200))     # a long name that fits is fine


def test_dangling_symbolic_links_and_loops_are_named_as_such(tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    for place in (link, link / "run"):
        with pytest.raises(OmniJaxError, match=rf"{link} is a symbolic link to {tmp_path / 'nowhere'}, which does "
                                               "not exist"):
            files.check_place(place)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(OmniJaxError, match=rf"cannot use {loop}: its symbolic links form a loop"):
        files.check_place(loop / "run")
    (tmp_path / "target").mkdir()
    good = tmp_path / "good"
    good.symlink_to(tmp_path / "target")
    assert files.check_place(good / "run") == good / "run"     # a link to a folder is a folder


def test_a_file_in_the_way(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OmniJaxError, match=rf"{tmp_path / 'f'} is a file, not a directory"):
        files.check_place(tmp_path / "f" / "run")
    with pytest.raises(OmniJaxError, match=rf"work directory {tmp_path / 'f'} is a file, not a directory"):
        files.check_place(tmp_path / "f")


@pytest.mark.parametrize("place,fs", [("/proc/omni-jax-run", "proc"), ("/sys/fs/omni-jax-run", "sysfs")])
def test_the_kernels_views_are_not_storage(place, fs):
    if not Path(place).parent.is_dir():
        pytest.skip(f"no {Path(place).parent} here")
    with pytest.raises(OmniJaxError, match=rf"{place} is under /\w+.*not storage; choose a folder on a disk"):
        files.check_place(place)


@pytest.mark.skipif(ROOT, reason="root writes anywhere")
def test_a_folder_that_cannot_be_written(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(OmniJaxError, match="cannot be written \\(permission denied\\)"):
        files.check_place(locked / "run")


def test_a_read_only_file_system_is_named(tmp_path):
    with tmpfs(tmp_path / "ro", "64k", read_only=True) as ro:
        with pytest.raises(OmniJaxError, match=rf"work directory {ro / 'run'} is on a read-only file system "
                                               rf"mounted at {ro}; use a directory on a writable file system"):
            files.check_place(ro / "run")


# ---------------------------------------------------------------------------- the operating system's errors


@pytest.mark.parametrize("message,expected", [
    ('RESOURCE_EXHAUSTED: Error writing local file "/w/x": Failed to write 393 bytes to file 7: No space left on '
     "device [os_error_code='28']", "no space left on the device (the disk is full); free some space"),
    ("UNKNOWN: [os_error_code='122'] writing /w/x", "the disk quota is exceeded; free some of your quota"),
    ("FAILED_PRECONDITION: Read-only file system", "the file system is read-only; use a directory on a writable"),
])
def test_errors_that_a_library_only_words_get_their_cause_and_advice(message, expected):
    e = files.error("/w/x", "write", ValueError(message), "move it aside")
    assert str(e).startswith(f"cannot write /w/x: {expected}") and "move it aside" not in str(e)


def test_the_cause_is_found_down_the_chain():
    try:
        try:
            raise OSError(errno.ENAMETOOLONG, "File name too long")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert files.os_error_in(outer).errno == errno.ENAMETOOLONG
    assert files.os_error_in(ValueError("nothing of the kind")) is None


def test_a_quota_exceeded_while_writing_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    files.write_json(path, [1])

    def over_quota(*a, **k):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(os, "replace", over_quota)
    with pytest.raises(OmniJaxError, match=rf"cannot write {path}: the disk quota is exceeded; free some of your "
                                           "quota \\(or use another directory\\)"):
        files.write_json(path, [2])
    assert json.loads(path.read_text()) == [1] and [p.name for p in tmp_path.iterdir()] == ["results.json"]


# ---------------------------------------------------------------------------- whose folder it is


def test_new_empty_and_marked_folders_are_claimed_others_refused(tmp_path):
    files.claim_directory(tmp_path / "new")                 # not there yet
    (tmp_path / "empty").mkdir()
    files.claim_directory(tmp_path / "empty")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.json").write_text('{"mine": 1}')
    (mine / "notes").mkdir()
    with pytest.raises(OmniJaxError, match=rf"work directory {mine} is not a folder omni-jax made \(no .omni-jax "
                                           r"file\) and is not empty; the run would overwrite results.json; choose "
                                           "a new or empty folder"):
        files.claim_directory(mine, writes=["results.json", "evaluation.json"])
    with pytest.raises(OmniJaxError, match=r"\(it holds notes, results.json\)"):
        files.claim_directory(mine, writes=["evaluation.json"])
    assert files.claim_directory(mine, adopt=lambda d: True) == mine      # an omni-jax folder from before the marker
    files.mark_directory(mine)
    marker = json.loads((mine / files.MARKER).read_text())
    assert marker["made_by"] == "omni-jax" and files.owned(mine)
    files.claim_directory(mine, writes=["results.json"])


def test_the_runner_never_writes_into_someone_elses_folder(tmp_path):
    from omni_jax.training import runner
    from test_runner import Toy, quiet, toy_config
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "results.json").write_text('{"mine": 1}')
    toy = Toy()
    with pytest.raises(OmniJaxError, match="the run would overwrite results.json"):
        runner.train_and_evaluate(toy, toy_config(), theirs, **quiet())
    assert toy.trained == [] and sorted(p.name for p in theirs.iterdir()) == ["results.json"]
    assert (theirs / "results.json").read_text() == '{"mine": 1}'
    # a new folder is made and marked; a work directory from before the marker is adopted
    runner.train_and_evaluate(Toy(), toy_config(), tmp_path / "new", **quiet())
    assert files.owned(tmp_path / "new")
    (tmp_path / "new" / files.MARKER).unlink()
    assert runner.train_and_evaluate(Toy(), toy_config(), tmp_path / "new", **quiet())
    assert files.owned(tmp_path / "new")


# ---------------------------------------------------------------------------- through the CLI


@pytest.mark.parametrize("name", ["long_name", "dangling", "proc", "foreign", "file"])
def test_places_a_run_cannot_use_are_one_line_errors_before_any_work(capsys, tmp_path, name):
    place = {"long_name": lambda: tmp_path / ("a" * 300), "dangling": lambda: tmp_path / "link",
             "proc": lambda: Path("/proc/omni-jax-run"), "foreign": lambda: tmp_path / "theirs",
             "file": lambda: tmp_path / "f"}[name]()
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "results.json").write_text("{}")
    (tmp_path / "f").write_text("x")
    if name == "proc" and not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    t0 = time.monotonic()
    code, out, err = run_cli(capsys, *SINUSOID, "--workdir", str(place))
    assert code == 2 and err.count("\n") == 1 and err.startswith("omni-jax: error: ") and out == ""
    assert time.monotonic() - t0 < 20           # refused before any training
    assert (tmp_path / "theirs" / "results.json").read_text() == "{}"


@pytest.mark.slow
def test_a_full_disk_is_one_line_keeps_what_was_written_and_the_rerun_resumes(capsys, tmp_path):
    code, out, _ = run_cli(capsys, *SINUSOID, "--workdir", str(tmp_path / "reference"))
    assert code == 0
    reference = json.loads((tmp_path / "reference" / "results.json").read_text())
    with tmpfs(tmp_path / "disk", "600k") as disk:   # maml's run fits (about 320 KB), omni's does not
        code, out, err = run_cli(capsys, *SINUSOID, "--workdir", str(disk / "run"))
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith(f"omni-jax: error: cannot write checkpoint step 50 to {disk / 'run' / 'omni'}") or \
            err.startswith("omni-jax: error: cannot write "), err
        assert "the disk is full" in err and "free some space" in err and "move it aside" not in err
        assert not list((disk / "run").rglob("*.damaged")) and not list((disk / "run").rglob("*orbax-checkpoint-tmp*"))
        assert (disk / "run" / "maml" / "checkpoints" / "100").is_dir()     # what was written before is intact
        remount(disk, "size=8m")
        code, out, err = run_cli(capsys, *SINUSOID, "--workdir", str(disk / "run"))
        assert code == 0, err
        assert "maml: restored the finished checkpoint (step 100)" in out
        assert json.loads((disk / "run" / "results.json").read_text()) == reference


@pytest.mark.slow
def test_a_file_system_made_read_only_under_a_run_is_one_line(capsys, tmp_path):
    with tmpfs(tmp_path / "disk", "8m") as disk:
        code, _, _ = run_cli(capsys, *SINUSOID, "--workdir", str(disk / "run"))
        assert code == 0
        remount(disk, "ro")
        code, out, err = run_cli(capsys, *SINUSOID, "--config.eval.num_tasks=5", "--workdir", str(disk / "run"))
        assert code == 2 and err.count("\n") == 1 and out == ""
        assert f"work directory {disk / 'run'} is on a read-only file system mounted at {disk}" in err


@pytest.mark.slow
def test_reprinting_a_finished_run_checks_its_files(capsys, tmp_path):
    wd = tmp_path / "run"
    code, out, _ = run_cli(capsys, *SINUSOID, "--workdir", str(wd))
    assert code == 0
    results = (wd / "results.json").read_bytes()
    metrics = wd / "omni" / "metrics.jsonl"
    lines = metrics.read_bytes().splitlines(keepends=True)
    metrics.write_bytes(lines[0] + os.urandom(40).replace(b"\n", b"x") + b"\n" + b"".join(lines[1:]))
    code, out, err = run_cli(capsys, *SINUSOID, "--workdir", str(wd))
    assert code == 0 and "restored finished maml, omni" in out
    assert f"warning: {metrics} has 1 damaged line(s) (line 2); the results above come from the checkpoints" in out
    # the finished checkpoint itself damaged: not reprinted, trained again from the earlier step
    step = wd / "maml" / "checkpoints" / "100"
    victim = max((p for p in step.rglob("*") if p.is_file() and p.name != "omni_jax_files.json"),
                 key=lambda p: p.stat().st_size)
    victim.write_bytes(os.urandom(victim.stat().st_size))
    code, out, err = run_cli(capsys, *SINUSOID, "--workdir", str(wd))
    assert code == 0 and "the finished checkpoint of maml is damaged" in out
    assert "restored finished" not in out and (wd / "results.json").read_bytes() == results
