"""The few-shot evaluator: how many tasks one jitted call scores does not change the scores."""
import jax
import numpy as np
import pytest

from omni_jax.algorithms.finetune import FinetuneConfig
from omni_jax.classification.datasets import synthetic_split
from omni_jax.classification.episodes import to_device
from omni_jax.classification.evaluate import EvalConfig, Evaluator
from omni_jax.classification.methods import method_spec
from omni_jax.classification.model import build_net, init_variables


@pytest.mark.slow
def test_maml_heads_score_the_same_tasks_alike_one_or_many_per_call():
    split = to_device(synthetic_split(8, 6, size=12, seed=3))
    spec = method_spec("omni_maml")
    net = build_net(spec, "conv4", 8, 3, width=4, depth=3)
    variables = init_variables(net, jax.random.PRNGKey(0), (12, 12, 1))
    kw = dict(n_way=3, k_shot=1, n_query=4, num_tasks=5, key=jax.random.PRNGKey(7), heads=("meta", "ensemble"))
    small = FinetuneConfig(epochs=3)
    accs = {}
    for per_call in (0, 1):   # 0: 4 tasks per call (64 images // 15 per task); 1: one task per call
        cfg = EvalConfig(finetune=small, maml_steps=2, images_per_call=64, maml_tasks_per_call=per_call)
        accs[per_call] = Evaluator(net, spec, cfg).accuracies(variables, split, **kw)
        assert {h: a.shape for h, a in accs[per_call].items()} == {"meta": (5,), "ensemble": (5,)}
    for h in ("meta", "ensemble"):
        np.testing.assert_allclose(accs[1][h], accs[0][h], atol=1e-6)
