"""The torch-free parts of benchmarks/classification_accuracy.py: the shared test tasks and the scorer."""
import importlib.util
from pathlib import Path

import jax
import numpy as np
import pytest

from omni_jax.classification.datasets import synthetic_split
from omni_jax.classification.episodes import sample_episode, to_device
from omni_jax.training import prng_stream

pytestmark = pytest.mark.slow   # ~20 s on a loaded 2-core CPU: JAX compiles the sampler

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "classification_accuracy.py"
_spec = importlib.util.spec_from_file_location("classification_accuracy", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_task_indices_are_omni_jax_test_tasks():
    ds = synthetic_split(9, 12, seed=3)
    n_way, k_shot, n_query, seed = 4, 2, 3, 1234
    tasks = bench.task_indices(ds.labels, ds.num_classes, n_way, k_shot, n_query, 5, seed)
    split = to_device(ds)
    base = prng_stream(seed, "test", n_way, k_shot)
    for i in range(5):
        ep = sample_episode(jax.random.fold_in(base, i), split, n_way, k_shot, n_query)
        np.testing.assert_array_equal(ds.images[tasks["support"][i]], np.asarray(ep["support"]["x"]))
        np.testing.assert_array_equal(ds.images[tasks["query"][i]], np.asarray(ep["query"]["x"]))
        np.testing.assert_array_equal(tasks["query_y"][i], np.asarray(ep["query"]["y"]))
    # the labels agree with the images' classes: one class per episode label
    for i in range(5):
        cls = ds.labels[tasks["support"][i]].reshape(n_way, k_shot)
        assert (cls == cls[:, :1]).all() and len(set(cls[:, 0])) == n_way


def test_prototype_accuracies_and_summary():
    ds = synthetic_split(6, 10, seed=1)
    tasks = bench.task_indices(ds.labels, ds.num_classes, 3, 1, 4, 20, 7)
    perfect = np.eye(6)[ds.labels] * 10.0                 # every class its own corner
    assert np.all(bench.prototype_accuracies(perfect, tasks, 3) == 1.0)
    constant = np.zeros((len(ds.labels), 4))              # ties: always the first prototype
    acc = bench.prototype_accuracies(constant, tasks, 3)
    np.testing.assert_allclose(acc, 1.0 / 3.0)
    m, ci = bench.summarize(acc)
    assert m == pytest.approx(100.0 / 3.0, abs=1e-3) and ci == pytest.approx(0.0, abs=1e-9)


def test_episode_sampler_and_settings():
    ds = synthetic_split(7, 20, seed=2)
    s = bench.EpisodeSampler(ds.images, ds.labels, 5, 2, 3, padding=2, pad_mode="zero", seed=0)
    x, n_support = s()
    assert x.shape == (25, 28, 28, 1) and n_support == 10 and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert bench.parse_settings("5x1, 20x1") == [(5, 1), (20, 1)]
    with pytest.raises(SystemExit):
        bench.parse_settings("5-1")
    rows = [{"side": "torch", "variant": "v", "split": "val", "n_way": 5, "k_shot": 1, "accuracy": 90.0,
             "ci95": 0.5}]
    assert "90.00 ± 0.50" in bench.table(rows)
