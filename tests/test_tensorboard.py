"""TensorBoard event files beside ``metrics.jsonl`` (:class:`MetricsWriter`): tags, steps and values,
the purge after a resume, ``tensorboard=False``, and a failing event file.

The event files are read back with a small TFRecord reader over tensorboardX's own ``Event`` proto
(checking the records' CRCs), and TensorBoard's view is rebuilt the way TensorBoard builds it, with
the purge rules of each of its readers (:func:`tensorboard_view`). Where the ``tensorboard`` package
is installed (it is not a dependency), the same files also go through its Python readers
(``purge_orphaned_data=True``, their default)."""
import errno
import json
import math
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.record_writer import masked_crc32c

from omni_jax.training import Chunk, Hook, TrainState, train_loop
from omni_jax.training.checkpoint import CheckpointStore
from omni_jax.training.metrics import MetricsWriter


def event_files(directory):
    return sorted(directory.glob("events.out.tfevents.*"))


def read_records(path):
    """The events of one TFRecord file (header: length u64 + its masked CRC; data + its masked CRC)."""
    raw, out, i = path.read_bytes(), [], 0
    while i < len(raw):
        header = raw[i:i + 8]
        (n,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", raw[i + 8:i + 12])[0] == masked_crc32c(header)
        data = raw[i + 12:i + 12 + n]
        assert struct.unpack("<I", raw[i + 12 + n:i + 16 + n])[0] == masked_crc32c(data)
        event = Event()
        event.ParseFromString(data)
        out.append(event)
        i += 16 + n
    return out


READERS = ("server", "legacy", "data_server")


def tensorboard_view(directory, reader="server"):
    """``{tag: [(step, value), ...]}`` as TensorBoard shows the folder, reading its files in the order of
    their names, with the purge rules of its ``reader``:

    * ``server``: a ``SessionLog.START`` at step ``s`` discards the points read before it with step
      ``>= s``, except a run's first START (the session's start): TensorBoard's Python server
      (``--load_fast=false``, its plugin accumulator);
    * ``legacy``: every START purges (its older ``EventAccumulator``);
    * ``data_server``: STARTs are ignored; a point of a tag at a step not after the tag's last one
      discards the tag's points from that step on (the Rust data server, the default viewer).
    """
    points, seen_start = {}, reader == "legacy"
    for path in event_files(directory):
        for event in read_records(path):
            if reader != "data_server" and event.HasField("session_log") \
                    and event.session_log.status == SessionLog.START:
                if seen_start:
                    points = {t: [p for p in ps if p[0] < event.step] for t, ps in points.items()}
                seen_start = True
            for v in event.summary.value:
                ps = points.setdefault(v.tag, [])
                if reader == "data_server" and ps and event.step <= ps[-1][0]:
                    ps[:] = [p for p in ps if p[0] < event.step]
                ps.append((event.step, v.simple_value))
    return points


def accumulator_views(directory):
    """The same through TensorBoard's own readers (``purge_orphaned_data=True``, their default): the
    server's plugin accumulator and the older ``EventAccumulator``; none without the ``tensorboard``
    package (it is not a dependency)."""
    try:
        from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator
        from tensorboard.util import tensor_util
    except ImportError:
        return []
    old = event_accumulator.EventAccumulator(str(directory), purge_orphaned_data=True)
    old.Reload()
    server = plugin_event_accumulator.EventAccumulator(str(directory), purge_orphaned_data=True)
    server.Reload()
    return [{t: [(e.step, e.value) for e in old.Scalars(t)] for t in old.Tags()["scalars"]},
            {t: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in server.Tensors(t)]
             for t in server.Tags()["tensors"]}]


def assert_views(directory, expected):
    """TensorBoard shows ``expected`` (float32 values, as event files hold them)."""
    expected = {t: [(s, pytest.approx(float(np.float32(v)), nan_ok=True)) for s, v in ps] for t, ps in expected.items()}
    for reader in READERS:
        assert tensorboard_view(directory, reader) == expected, reader
    for view in accumulator_views(directory):
        assert view == expected


def jsonl_view(path):
    """``{tag: [(step, value), ...]}`` of the scalars in ``metrics.jsonl``."""
    out = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        for k, v in record.items():
            if k != "step" and isinstance(v, (int, float)):
                out.setdefault(k, []).append((record["step"], v))
    return out


def test_scalars_are_written_with_their_tags_steps_and_values(tmp_path):
    m = MetricsWriter(tmp_path / "maml" / "metrics.jsonl", warn=pytest.fail)
    assert event_files(tmp_path / "maml") == []                 # nothing written yet: no file
    m.write(10, {"loss/total": jnp.asarray(1.5), "loss/pre": np.float32(0.25), "val/accuracy": np.asarray([0.75]),
                 "skipped_updates": np.int32(2), "val/finite": True, "val/nan": float("nan")})
    m.write(20, {"loss/total": 0.5, "per_task": np.arange(3.0), "note": "text"}, phase=2)
    assert_views(tmp_path / "maml", {"loss/total": [(10, 1.5), (20, 0.5)], "loss/pre": [(10, 0.25)],
                                     "val/accuracy": [(10, 0.75)], "skipped_updates": [(10, 2.0)],
                                     "val/finite": [(10, 1.0)], "val/nan": [(10, math.nan)], "phase": [(20, 2.0)]})
    # one file, in the method's own folder; metrics.jsonl as before (the vector and text only there)
    assert [p.parent for p in event_files(tmp_path)] == [] and len(event_files(tmp_path / "maml")) == 1
    records = [json.loads(l) for l in m.path.read_text().splitlines()]
    assert records[1] == {"step": 20, "loss/total": 0.5, "per_task": [0.0, 1.0, 2.0], "note": "text", "phase": 2}
    m.close()
    m.close()


def test_a_resume_shows_each_step_once_with_the_new_values(tmp_path):
    d = tmp_path / "omni"
    first = MetricsWriter(d / "metrics.jsonl", warn=pytest.fail)
    first.truncate_after(0)                                          # a fresh run, as train_loop does
    for step in (1, 2, 3, 4):
        first.write(step, {"loss/total": 10.0 + step, **({"val/acc": 0.1 * step} if step % 2 == 0 else {})})
    del first                                                        # killed after step 4, checkpoint at 2
    resumed = MetricsWriter(d / "metrics.jsonl", warn=pytest.fail)
    resumed.truncate_after(2)
    for step in (3, 4, 5, 6):
        resumed.write(step, {"loss/total": 20.0 + step, **({"val/acc": 0.5 + step} if step % 2 == 0 else {})})
    expected = {"loss/total": [(1, 11.0), (2, 12.0), (3, 23.0), (4, 24.0), (5, 25.0), (6, 26.0)],
                "val/acc": [(2, 0.2), (4, 4.5), (6, 6.5)]}
    assert jsonl_view(d / "metrics.jsonl") == expected
    assert_views(d, expected)
    assert len(event_files(d)) == 2


def test_a_resume_that_has_not_caught_up_shows_only_the_kept_steps_and_the_new_ones(tmp_path):
    d = tmp_path / "omni"
    first = MetricsWriter(d / "metrics.jsonl", warn=pytest.fail)
    first.truncate_after(0)
    for step in (1, 2, 3, 4, 5, 6):
        first.write(step, {"loss/total": 10.0 + step, **({"val/acc": 0.1 * step} if step % 2 == 0 else {})})
    resumed = MetricsWriter(d / "metrics.jsonl", warn=pytest.fail)
    resumed.truncate_after(3)                                        # checkpoint 3: val/acc last kept at 2
    resumed.write(4, {"loss/total": 24.0})
    expected = {"loss/total": [(1, 11.0), (2, 12.0), (3, 13.0), (4, 24.0)], "val/acc": [(2, 0.2)]}
    assert jsonl_view(d / "metrics.jsonl") == expected
    assert_views(d, expected)


def test_a_purge_is_written_even_when_nothing_follows_it(tmp_path):
    d = tmp_path / "m"
    first = MetricsWriter(d / "metrics.jsonl", warn=pytest.fail)
    for step in (1, 2, 3):
        first.write(step, {"loss": float(step)})
    MetricsWriter(d / "metrics.jsonl", warn=pytest.fail).truncate_after(1)
    assert_views(d, {"loss": [(1, 1.0)]})
    # a resume that drops nothing adds no file (a finished run evaluated again)
    MetricsWriter(d / "metrics.jsonl", warn=pytest.fail).truncate_after(1)
    assert len(event_files(d)) == 2


def test_a_run_logged_before_tensorboard_gets_its_curves_from_metrics_jsonl(tmp_path):
    d = tmp_path / "m"
    old = MetricsWriter(d / "metrics.jsonl", tensorboard=False)
    for step in (1, 2, 3):
        old.write(step, {"loss": float(step)})
    m = MetricsWriter(d / "metrics.jsonl", warn=pytest.fail)
    m.truncate_after(2)
    m.write(3, {"loss": 30.0})
    assert_views(d, {"loss": [(1, 1.0), (2, 2.0), (3, 30.0)]})


def test_tensorboard_false_writes_no_event_file(tmp_path):
    m = MetricsWriter(tmp_path / "metrics.jsonl", tensorboard=False)
    m.truncate_after(0)
    m.write(1, {"loss/total": 1.0})
    m.truncate_after(0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]


def test_an_unwritable_event_directory_warns_once_and_metrics_jsonl_goes_on(tmp_path):
    (tmp_path / "tb").write_text("a file where the event folder should be")
    warnings = []
    m = MetricsWriter(tmp_path / "metrics.jsonl", warn=warnings.append, tensorboard=tmp_path / "tb")
    for step in (1, 2, 3):
        m.write(step, {"loss/total": float(step)})
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "cannot write TensorBoard events" in warnings[0] and "not a directory" in warnings[0]
    assert [json.loads(l)["step"] for l in m.path.read_text().splitlines()] == [1, 2, 3]
    assert not m.tensorboard and event_files(tmp_path) == []


def test_a_failing_event_write_warns_once_and_metrics_jsonl_goes_on(tmp_path, monkeypatch):
    from tensorboardX.event_file_writer import EventsWriter
    warnings = []
    m = MetricsWriter(tmp_path / "metrics.jsonl", warn=warnings.append)
    m.write(1, {"loss": 1.0})
    def full(self, event):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(EventsWriter, "write_event", full)
    for step in (2, 3, 4):
        m.write(step, {"loss": float(step)})
    assert len(warnings) == 1 and "the disk is full" in warnings[0] and "metrics.jsonl is still written" in warnings[0]
    assert [json.loads(l)["step"] for l in m.path.read_text().splitlines()] == [1, 2, 3, 4]
    monkeypatch.undo()
    assert_views(tmp_path, {"loss": [(1, 1.0)]})                    # what was written before stays readable


# ---------------------------------------------------------------------------- with the training loop


def noisy_step(state, data):
    rng, key = jax.random.split(state.rng)
    params = state.params + data * jax.random.normal(key, state.params.shape)
    return state.replace(step=state.step + 1, params=params, rng=rng), {"loss/total": jnp.sum(params)}


def validation(state):
    return state, {"val/score": -float(jnp.sum(jnp.abs(state.params)))}


def test_train_loop_interrupted_and_resumed_shows_what_metrics_jsonl_has(tmp_path):
    state = TrainState(step=jnp.zeros((), jnp.int32), params=jnp.zeros(3), opt_state=(), rng=jax.random.PRNGKey(0))
    run = lambda **kw: train_loop(state, Chunk(noisy_step, 2), total_steps=8, chunk_size=2, data=jnp.asarray(1.0),
                                  store=CheckpointStore(tmp_path / "checkpoints", {"x": 1}), ckpt_every=4,
                                  metrics=MetricsWriter(tmp_path / "metrics.jsonl", warn=pytest.fail),
                                  hook=Hook(validation, 4), show_progress=False, **kw)
    run(stop_after=6)                      # logged 2, 4, 6; checkpoint at 4
    run()                                  # resumes at 4: 6 again, then 8
    view = jsonl_view(tmp_path / "metrics.jsonl")
    assert [s for s, _ in view["loss/total"]] == [2, 4, 6, 8] and [s for s, _ in view["val/score"]] == [4, 8]
    assert_views(tmp_path, view)
