"""Two processes of one run on one machine (gloo over localhost), sharing one work directory: the
results equal a one-process run on the same two-device mesh, and every file other than the
checkpoints is written by process 0 alone, once."""
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from omni_jax.errors import OmniJaxError
from omni_jax.training.sharding import initialize_distributed, parse_coordinator

TINY = """
from omni_jax.configs import sinusoid_quick


def get_config():
    c = sinusoid_quick.get_config()
    c.data.num_train_tasks = 100
    c.train.methods = ("omni",)
    c.train.num_steps = 40
    c.train.chunk_size = 20
    c.train.ckpt_every = 20
    c.train.val_every = 20
    c.train.meta_batch = 4
    c.train.pre_batch = 20
    c.eval.num_tasks = 8
    c.eval.k_shots = (5,)
    c.eval.max_steps = 2
    c.train.val_tasks = 4
    return c
"""

# Runs the command line with every write of a file outside the checkpoints logged: the final
# os.replace of an atomic write, and an open() for writing or appending of anything but a temporary.
WORKER = textwrap.dedent("""
    import builtins, os, sys
    log_path, argv = sys.argv[1], sys.argv[2:]
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    def note(kind, path):
        path = os.path.abspath(os.fspath(path))
        if "/checkpoints/" not in path and not path.endswith(".tmp"):
            os.write(fd, f"{kind} {path}\\n".encode())
    real_replace, real_open = os.replace, builtins.open
    def replace(src, dst, *a, **k):
        note("replace", dst)
        return real_replace(src, dst, *a, **k)
    def open_(file, mode="r", *a, **k):
        if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
            note("open:" + mode, file)
        return real_open(file, mode, *a, **k)
    os.replace, builtins.open = replace, open_
    from omni_jax import cli
    sys.exit(cli.main(argv))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env(**extra):
    env = dict(os.environ, MPLBACKEND="Agg", JAX_PLATFORMS="cpu", **extra)
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


def _writes(log: Path):
    return [line.split(" ", 1) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.slow
def test_two_processes_share_a_workdir_and_match_one_process(tmp_path):
    cfg = tmp_path / "tiny.py"
    cfg.write_text(TINY)
    common = ["sinusoid", "--config", str(cfg), "--no-progress"]
    port = _free_port()
    shared = tmp_path / "shared"
    procs = []
    for pid in (0, 1):
        argv = common + ["--workdir", str(shared), "--distributed", "--coordinator", f"localhost:{port}",
                         "--num-processes", "2", "--process-id", str(pid)]
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / f"writes{pid}.log")] + argv,
                                      env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=1500)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out
    assert "2 cpu device(s)" in outs[0]

    # the same run in one process, on a mesh of two (fake) CPU devices
    single = tmp_path / "single"
    one = subprocess.run([sys.executable, "-m", "omni_jax.cli"] + common + ["--workdir", str(single)],
                         env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"),
                         capture_output=True, text=True, timeout=1500)
    assert one.returncode == 0, one.stdout + one.stderr
    assert "2 cpu device(s)" in one.stdout

    got = json.loads((shared / "results.json").read_text())
    want = json.loads((single / "results.json").read_text())
    assert [{k: v for k, v in r.items() if k not in ("mse", "ci95")} for r in got] == \
           [{k: v for k, v in r.items() if k not in ("mse", "ci95")} for r in want]
    np.testing.assert_allclose([r["mse"] for r in got], [r["mse"] for r in want], rtol=1e-5)
    np.testing.assert_allclose([r["ci95"] for r in got], [r["ci95"] for r in want], rtol=1e-5)

    # every step once in metrics.jsonl, with the one-process run's values
    rows = [json.loads(line) for line in (shared / "omni" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [20, 40]
    single_rows = [json.loads(line) for line in (single / "omni" / "metrics.jsonl").read_text().splitlines()]
    np.testing.assert_allclose([r["loss/total"] for r in rows], [r["loss/total"] for r in single_rows], rtol=1e-5)

    # process 1 wrote nothing outside the checkpoints; process 0 wrote each file once
    assert _writes(tmp_path / "writes1.log") == []
    writes0 = _writes(tmp_path / "writes0.log")
    replaced = [path for kind, path in writes0 if kind == "replace"]
    assert len(replaced) == len(set(replaced)), writes0
    written = {Path(p).relative_to(shared).as_posix() for p in replaced}
    assert {"results.json", "evaluation.json", "fig5_mse_vs_steps.png", "fig6_recovered_waves.png"} <= written
    appended = [path for kind, path in writes0 if kind.startswith("open:a")]
    assert set(appended) <= {str(shared / "omni" / "metrics.jsonl")}
    assert "40" in {p.name for p in (shared / "omni" / "checkpoints").iterdir()}


@pytest.mark.parametrize("kwargs,message", [
    (dict(coordinator="localhost:1234"), "go together"),
    (dict(coordinator="localhost", num_processes=2, process_id=0), "must look like HOST:PORT"),
    (dict(coordinator="localhost:99999", num_processes=2, process_id=0), "must look like HOST:PORT"),
    (dict(coordinator="localhost:1234", num_processes=0, process_id=0), "--num-processes must be a positive"),
    (dict(coordinator="localhost:1234", num_processes=2, process_id=2), r"--process-id must be in \[0, 2\)"),
])
def test_bad_distributed_options_are_one_line_errors(kwargs, message):
    with pytest.raises(OmniJaxError, match=message):
        initialize_distributed(**kwargs)


def test_the_options_need_distributed(capsys):
    from omni_jax import cli
    assert cli.main(["sinusoid", "--quick", "--num-processes", "2"]) == 2
    assert "need --distributed" in capsys.readouterr().err


def test_ipv6_coordinator():
    assert parse_coordinator("[::1]:1234") == "[::1]:1234"
