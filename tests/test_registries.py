"""Open registries of classification: a user's algorithm and backbone run with no edit to the package."""
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omni_jax import cli
from omni_jax import config as config_lib
from omni_jax.classification import (MetaAlgorithm, PretrainAlgorithm, method_names, register_backbone,
                                     register_meta_algorithm, register_pretrain)
from omni_jax.classification import methods as methods_lib
from omni_jax.classification import model as model_lib
from omni_jax.classification.experiment import fingerprint, spec_for
from omni_jax.errors import OmniJaxError

EXAMPLE = Path(__file__).resolve().parents[1] / "experiments" / "bring_your_own" / "config.py"


def never_built(thread, tc, outputs):
    raise AssertionError("not built in this test")


def test_the_package_methods_are_derived_from_the_registered_algorithms():
    names = set(method_names())
    for a in methods_lib.META_ALGORITHMS.values():
        assert a.method in names and f"omni_{a.name}" in names
    for p in methods_lib.PRETRAIN_ALGORITHMS.values():
        assert p.method in names
    assert names == {a.method for a in methods_lib.META_ALGORITHMS.values()} | {
        f"omni_{a}" for a in methods_lib.META_ALGORITHMS} | {p.method for p in methods_lib.PRETRAIN_ALGORITHMS.values()} | {
        "joint", "ensemble"}


def test_registering_an_algorithm_adds_both_of_its_methods(registries):
    register_meta_algorithm(MetaAlgorithm("mine", build=never_built, method="mine_alone"))
    assert {"mine_alone", "omni_mine"} <= set(method_names())
    spec = methods_lib.method_spec("omni_mine")
    assert spec.omni and spec.meta == "mine" and spec.default_head == "ensemble" and spec.weights.distill_meta
    alone = methods_lib.method_spec("mine_alone")
    assert not alone.omni and alone.meta == "mine" and alone.default_head == "meta" and not alone.weights.joint_pre


@pytest.mark.parametrize("make,message", [
    (lambda: MetaAlgorithm("proto", build=never_built), "already registered"),
    (lambda: MetaAlgorithm("x", build=never_built, method="protonet"), "method name 'protonet' is taken"),
    (lambda: MetaAlgorithm("not a name", build=never_built), "must be an identifier"),
])
def test_a_name_is_registered_once(registries, make, message):
    with pytest.raises(ValueError, match=message):
        register_meta_algorithm(make())


def test_an_algorithm_is_checked_when_it_is_made():
    with pytest.raises(ValueError, match="test must be one of features, maml, episode"):
        MetaAlgorithm("y", build=never_built, test="somehow")
    with pytest.raises(ValueError, match="input must be features or feature_map"):
        MetaAlgorithm("y", build=never_built, input="pixels")


def test_pretrain_and_backbone_registries(registries):
    register_pretrain(PretrainAlgorithm("linear2", method="baseline2", head="linear"))
    assert methods_lib.method_spec("baseline2").pretrain == "linear2"
    with pytest.raises(ValueError, match="head must be one of linear, cosine"):
        register_pretrain(PretrainAlgorithm("z", method="bz", head="mlp"))
    register_backbone("tiny", lambda **options: model_lib.BACKBONES["conv4"](**dict(options, depth=1, width=4)))
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("tiny", lambda **options: None)
    net = model_lib.build_net(methods_lib.method_spec("omni_proto"), "tiny", num_classes=3, episode_ways=2)
    variables = model_lib.init_variables(net, jax.random.PRNGKey(0), (8, 8, 1))
    widths = {x.shape[-1] for x in jax.tree_util.tree_leaves(variables["params"]["body"])}
    assert widths == {4}                                   # the factory's width, not the default 64


def test_the_fingerprint_asks_the_method_not_its_name(registries):
    """A user's plain method whose name starts with omni has no omni group in its fingerprint (before:
    a config without one crashed with a bare KeyError); the Omni methods have theirs."""
    register_meta_algorithm(MetaAlgorithm("vore", build=never_built, method="omnivore"))
    cfg = config_lib.load_config("classify_synthetic")
    assert not spec_for(cfg, "omnivore").omni and "omni" not in fingerprint(cfg, "omnivore")
    assert "omni" in fingerprint(cfg, "omni_vore")
    bare = config_lib.load_config("classify_synthetic")
    del bare["omni"]
    assert "omni" not in config_lib.fingerprint(bare, "omnivore", ["data"], omni=False)


def test_the_example_algorithm_by_hand(registries):
    """The worked example's cosine prototypes on a tiny episode against numbers computed by hand."""
    from experiments.bring_your_own.config import cosine_protos
    fs = jnp.array([[[1.0, 0.0], [0.0, 2.0]]])          # support features: class 0 along x, class 1 along y
    fq = jnp.array([[[3.0, 3.0], [0.0, -1.0]]])
    episode = {"support": {"x": fs, "y": jnp.array([[0, 1]])}, "query": {"x": fq, "y": jnp.array([[0, 1]])}}
    loss, logits = cosine_protos(lambda p, x, flow: x, n_way=2, scale=10.0)(None, episode, "joint")
    c = 1 / np.sqrt(2)
    expected = 10.0 * np.array([[[c, c], [0.0, -1.0]]])
    np.testing.assert_allclose(logits, expected, rtol=1e-5)
    ce = lambda z, y: -(z[y] - np.log(np.exp(z).sum()))
    np.testing.assert_allclose(loss, (ce(expected[0, 0], 0) + ce(expected[0, 1], 1)) / 2, rtol=1e-5)


TINY = ["--config.model.width=4", "--config.model.depth=2", "--config.data.synthetic.size=8",
        "--config.data.synthetic.classes=(8, 6, 6)", "--config.data.synthetic.per_class=10",
        "--config.train.num_steps=4", "--config.train.chunk_size=2", "--config.train.ckpt_every=2",
        "--config.train.val_every=2", "--config.train.val_tasks=4", "--config.train.n_way=3",
        "--config.train.k_shot=1", "--config.train.n_query=3", "--config.eval.n_query=3",
        "--config.train.batch_size=8", "--config.eval.num_tasks=6", "--config.eval.settings=((3, 1),)",
        "--no-progress"]


@pytest.mark.slow
def test_a_users_model_and_algorithm_run_through_the_command_line(tmp_path, capsys, registries):
    """``omni-jax classify --config <the user's file>``: a Flax ResNet made tri-flow by omnify and a
    new algorithm, both registered by the config file, trained and tested beside the package's own
    method, with no edit to the package."""
    code = cli.main(["classify", "--config", str(EXAMPLE), "--workdir", str(tmp_path), *TINY])
    out = capsys.readouterr()
    assert code == 0, out.err
    records = json.loads((tmp_path / "results.json").read_text())
    assert [(r["method"], r["head"], r["meta_algorithm"], r["backbone"]) for r in records] == [
        ("omni_cosproto", "ensemble", "cosproto", "flax_resnet"), ("cosproto", "meta", "cosproto", "flax_resnet"),
        ("omni_proto", "ensemble", "proto", "flax_resnet")]
    # the omnified ResNet holds every flow's parameters; the plain one (cosproto alone) one flow's
    assert records[0]["params"] > records[1]["params"]
    assert "omni_cosproto" in out.out and all(0 <= r["accuracy"] <= 100 for r in records)
    # the user's Omni method trains every flow of the Omni-Loss with the user's algorithm
    metrics = [json.loads(l) for l in (tmp_path / "omni_cosproto" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss/meta", "loss/distill_meta", "loss/joint_meta", "loss/pre"} <= set(metrics[-1])
    from omni_jax.classification.experiment import check
    cfg = config_lib.load_config("classify_synthetic")
    cfg.train.methods = ("omni_nosuch",)                    # an algorithm nobody registered
    with pytest.raises(OmniJaxError, match="train.methods has unknown value"):
        check(cfg)
