"""Training steps (BatchNorm statistics per flow, teacher, MAML) and the classify CLI end to end."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omni_jax import cli
from omni_jax.classification.augment import AugmentConfig
from omni_jax.classification.datasets import synthetic_split
from omni_jax.classification.episodes import to_device
from omni_jax.classification.methods import method_spec
from omni_jax.classification.train import TrainConfig, create_train_state, make_train_chunk
from omni_jax.nn.convnets import Conv4, FewShotNet

TC = TrainConfig(batch_size=8, n_way=3, k_shot=2, n_query=2)


def _net(spec):
    body = Conv4(width=4, depth=2, omni=spec.omni)
    return FewShotNet(body, num_classes=6, omni=spec.omni, episode_ways=TC.n_way if spec.meta == "maml" else 0,
                      twin=spec.twin)


@pytest.fixture(scope="module")
def split():
    return to_device(synthetic_split(6, 8, 8, 1, seed=0))


def _bn_means(stats):
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(stats)
            if "mean" in jax.tree_util.keystr(k)}


def _changed(before, after):
    return {k for k in before if not np.allclose(before[k], after[k])}


@pytest.mark.slow
def test_omni_proto_step_updates_every_flows_statistics_and_the_teacher(split):
    spec = method_spec("omni_proto")
    net = _net(spec)
    state = create_train_state(net, spec, TC, (8, 8, 1), 0)
    new, metrics = make_train_chunk(net, spec, TC, AugmentConfig(), 2)(state, split)
    changed = _changed(_bn_means(state.batch_stats), _bn_means(new.batch_stats))
    for flow in ("joint", "pre", "meta"):
        assert any(f"'{flow}'" in k for k in changed), flow
    assert set(metrics) >= {"loss/joint_pre", "loss/joint_meta", "loss/pre", "loss/meta", "loss/distill_pre",
                            "loss/distill_meta", "loss/total"}
    assert all(np.isfinite(float(v)) for v in metrics.values())
    from omni_jax.omni import teacher_params
    t0, t1 = teacher_params(state.opt_state), teacher_params(new.opt_state)
    p1 = new.params
    leaf = lambda t: np.asarray(t["body"]["block0"]["conv"]["meta"]["kernel"])
    assert not np.allclose(leaf(t0), leaf(t1)) and not np.allclose(leaf(t1), leaf(p1))  # EMA moves, lags


@pytest.mark.slow
def test_maml_step_trains_but_leaves_running_statistics_alone(split):
    spec = method_spec("maml")
    net = _net(spec)
    state = create_train_state(net, spec, TC, (8, 8, 1), 0)
    new, metrics = make_train_chunk(net, spec, TC, AugmentConfig(), 1)(state, split)
    assert not _changed(_bn_means(state.batch_stats), _bn_means(new.batch_stats))
    k = lambda s: np.asarray(s.params["body"]["block0"]["conv"]["joint"]["kernel"])
    assert not np.allclose(k(state), k(new)) and np.isfinite(float(metrics["loss/total"]))


SMALL = ["--config.model.width=4", "--config.model.depth=2", "--config.data.synthetic.size=8",
         "--config.data.synthetic.classes=(8, 6, 6)", "--config.data.synthetic.per_class=10",
         "--config.train.num_steps=4", "--config.train.chunk_size=2", "--config.train.ckpt_every=2",
         "--config.train.val_every=2", "--config.train.val_tasks=4", "--config.train.n_way=3",
         "--config.train.k_shot=1", "--config.train.n_query=3", "--config.eval.n_query=3", "--config.train.batch_size=8",
         "--config.eval.num_tasks=6", "--config.eval.settings=((3, 1),)", "--config.eval.finetune_epochs=2",
         "--no-progress"]


@pytest.mark.slow
def test_cli_trains_selects_evaluates_and_writes_results(tmp_path, capsys):
    wd = tmp_path / "run"
    argv = ["classify", "--dataset", "synthetic", "--method", "joint", "--workdir", str(wd),
            "--config.eval.heads=('joint', 'ensemble')"] + SMALL
    assert cli.main(argv) == 0
    records = json.loads((wd / "results.json").read_text())
    assert [r["head"] for r in records] == ["joint", "ensemble"]
    for r in records:
        assert {"dataset", "method", "backbone", "n_way", "k_shot", "head", "accuracy", "ci95"} <= set(r)
        assert r["dataset"] == "synthetic" and r["method"] == "joint" and r["backbone"] == "conv4"
        assert (r["n_way"], r["k_shot"]) == (3, 1) and 0 <= r["accuracy"] <= 100 and r["ci95"] >= 0
    lines = [json.loads(l) for l in (wd / "joint" / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [2, 4] and all("val/accuracy" in l for l in lines)
    assert all(l["skipped_total"] == 0 for l in lines)
    out = capsys.readouterr().out
    assert "3-way 1-shot" in out and "±" in out and (wd / "accuracy.png").stat().st_size > 0
    # Rerunning a finished run restores it: no training, no evaluation, same results.
    assert cli.main(argv) == 0
    assert "restored finished joint" in capsys.readouterr().out
    assert json.loads((wd / "results.json").read_text()) == records
    # Testing on another split reuses the trained model: the test split is no part of its fingerprint.
    assert cli.main(argv + ["--config.data.test_split=val", "--eval-only"]) == 0
    assert "joint: restored the finished checkpoint (step 4)" in capsys.readouterr().out
    other = json.loads((wd / "results.json").read_text())
    assert {r["test_split"] for r in other} == {"val"} and other != records
    kept = [json.loads(p.read_text())["records"] for p in (wd / "evaluations").glob("*.json")]
    assert sorted(kept, key=lambda r: r[0]["test_split"]) == [records, other]  # both kept, side by side
    # --eval-only on a work directory with nothing trained is a one-line error
    assert cli.main(argv[:argv.index("--workdir") + 1] + [str(tmp_path / "empty")] + argv[argv.index("--workdir") + 2:]
                    + ["--eval-only"]) == 2
    assert "train it first" in capsys.readouterr().err


@pytest.mark.slow
def test_python_entry_point_trains_several_methods_into_one_table(tmp_path):
    from omni_jax import config as config_lib
    from omni_jax.classification import train_and_evaluate
    cfg = config_lib.load_config("classify_synthetic", quick=True)
    cfg = config_lib.apply_overrides(cfg, [a.removeprefix("--config.") for a in SMALL if a.startswith("--config.")]
                                     + ["train.methods=('protonet', 'baseline')"])
    logged = []
    records = train_and_evaluate(cfg, tmp_path, show_progress=False, log=logged.append)
    assert [(r["method"], r["head"]) for r in records] == [("protonet", "meta"), ("baseline", "pre")]
    assert json.loads((tmp_path / "results.json").read_text()) == records
    assert any(line.startswith("protonet: selected step") for line in logged)
    for m in ("protonet", "baseline"):
        assert (tmp_path / m / "checkpoints").is_dir() and (tmp_path / m / "metrics.jsonl").is_file()


@pytest.mark.parametrize("args,message", [
    (["--method", "siamese"], "unknown value(s) ['siamese']"),
    (["--config.train.pretrain=l2"], "train.pretrain must be one of linear, cosine"),
    (["--method", "gnn", "--config.eval.settings=((5, 1),)"], "train.n_way=3 outputs and cannot score 5-way"),
    (["--method", "gnn", "--config.model.gnn_graph=star"], "model.gnn_graph must be one of query, class_set"),
    (["--config.eval.finetune_dampening=1.5"], "eval.finetune_dampening must be in [0, 1]"),
    (["--method", "relationnet", "--config.model.depth=4"], "2x2 are too small for the relation module"),
    (["--backbone", "vgg"], "model.backbone='vgg' is unknown"),
    (["--config.data.flip=auto"], "data.flip expects true/false"),
    (["--config.eval.heads=('joint',)", "--method", "protonet,ensemble"], "joint flow of method ensemble"),
    (["--config.train.n_way=9"], "fewer than n_way=9"),
    (["--config.train.n_query=12"], "fewer than k_shot+n_query=13"),
    (["--config.data.dataset=miniimagenet", "--data-dir", "/nonexistent/mini"], "/nonexistent/mini"),
    (["--dataset", "miniimagenet"], "unknown config field 'data.synthetic.size'"),
])
def test_cli_bad_input_is_a_one_line_error_and_writes_nothing(tmp_path, capsys, args, message):
    wd = tmp_path / "bad"
    argv = ["classify", "--workdir", str(wd)] + SMALL + args  # the synthetic config by default
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("omni-jax: error:") and message in err and "\n" not in err
    assert not wd.exists()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["matchingnet", "omni_matching", "relationnet", "omni_relation", "gnn", "omni_gnn",
                                    "gnn:query", "baseline_pp"])
def test_each_new_method_trains_and_tests_from_the_command_line(tmp_path, method):
    method, _, graph = method.partition(":")    # gnn:query: the GNN with one query per graph
    wd = tmp_path / method
    argv = ["classify", "--quick", "--dataset", "synthetic", "--method", method, "--workdir", str(wd),
            "--config.model.gnn_embed_dim=8", "--config.model.gnn_features=6", "--config.train.num_steps=2",
            "--config.eval.heads=('default', 'ensemble')", f"--config.model.gnn_graph={graph or 'class_set'}"
            ] + [a for a in SMALL if not a.startswith("--config.train.num_steps")]
    assert cli.main(argv) == 0
    records = json.loads((wd / "results.json").read_text())
    spec = method_spec(method)
    assert [r["head"] for r in records] == list(dict.fromkeys([spec.default_head, "ensemble"]))
    for r in records:
        assert r["method"] == method and 0 <= r["accuracy"] <= 100 and r["pretrain"] == spec.pretrain
        assert r["head_algorithms"] == [f"{f}:{a}" for f, a in spec.head_algorithms(r["head"])]
    lines = [json.loads(l) for l in (wd / method / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 2 and np.isfinite(lines[-1]["loss/total"]) and lines[-1]["skipped_total"] == 0


@pytest.mark.slow
def test_pretrain_cosine_and_maml_first_order_from_the_config(tmp_path):
    wd = tmp_path / "run"
    argv = ["classify", "--dataset", "synthetic", "--method", "omni_maml,joint", "--workdir", str(wd),
            "--config.train.pretrain=cosine", "--config.train.maml_first_order=True", "--config.train.maml_tasks=2",
            "--config.eval.finetune_backbone_steps=2", "--config.train.num_steps=2"
            ] + [a for a in SMALL if not a.startswith("--config.train.num_steps")]
    assert cli.main(argv) == 0
    records = json.loads((wd / "results.json").read_text())
    assert {r["pretrain"] for r in records} == {"cosine"} and {r["method"] for r in records} == {"omni_maml", "joint"}


@pytest.mark.slow
def test_omni_training_logs_every_heads_validation_curve(tmp_path, capsys):
    """Paper §7.1, Figure 10a/b: the validation accuracy of each head (each flow and their ensemble)
    and the training loss of each flow, at every validation step; the selecting head's is also
    ``val/accuracy``. Each head's number is the one the evaluator gives that head alone."""
    from omni_jax.classification import experiment
    from omni_jax.training import runner
    wd = tmp_path / "run"
    assert cli.main(["classify", "--dataset", "synthetic", "--method", "omni_proto,protonet", "--workdir", str(wd),
                     "--train-only"] + SMALL) == 0
    lines = [json.loads(l) for l in (wd / "omni_proto" / "metrics.jsonl").read_text().splitlines()]
    heads = ("joint", "pre", "meta", "ensemble")
    for line in lines:
        assert {f"val/accuracy/{h}" for h in heads} <= set(line)
        assert line["val/accuracy"] == line["val/accuracy/ensemble"]    # omni_proto's own head selects
        assert {"loss/joint_pre", "loss/joint_meta", "loss/pre", "loss/meta", "loss/distill_pre",
                "loss/distill_meta"} <= set(line)
    plain = [json.loads(l) for l in (wd / "protonet" / "metrics.jsonl").read_text().splitlines()]
    assert all(not any(k.startswith("val/accuracy/") for k in line) and "val/accuracy" in line for line in plain)
    # the last validation, head by head, as the evaluator scores each head alone
    from omni_jax import config as config_lib
    cfg = config_lib.apply_overrides(config_lib.load_config("classify_synthetic"), [a[len("--config."):] for a in SMALL if a.startswith("--config.")]
                               + ["train.methods=('omni_proto',)", "data.dataset=synthetic"])
    trained = runner.trained_models(experiment.ClassificationExperiment(), cfg, wd, ["omni_proto"])["omni_proto"]
    data = experiment.load_data(cfg)
    program = trained.program
    state = trained.state
    spec = experiment.spec_for(cfg, "omni_proto")
    for h in heads:
        hook = experiment.selection_hook(cfg, program.model.net, spec, data, head=h)
        _, metrics = hook.fn(state)
        assert float(metrics["val/accuracy"]) == pytest.approx(lines[-1][f"val/accuracy/{h}"], abs=1e-4)
