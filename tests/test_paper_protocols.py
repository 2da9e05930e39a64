"""Tables 2-5 as the paper runs them (Tseng et al.'s protocol for 4 and 5), on fixture files in the real
on-disk formats: mini-ImageNet's CSV layout, CUB-200-2011's folders, the cross-domain benchmark's
JSON split files naming images by absolute paths of another machine.

* one training on mini-ImageNet, selected on its validation split, tested on four domains; the test
  datasets are not part of the checkpoint's fingerprint unless selection reads one;
* leave-one-out episodes: each from one training domain, the domains balanced; selection on
  mini-ImageNet's validation split;
* the commands of docs/classification.md's "Running Tables 2-5 on the real datasets", run at a tiny
  size (``--slow``).
"""
import copy
import json
import re
import shlex
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from omni_jax import cli
from omni_jax import config as config_lib
from omni_jax.classification import experiment
from omni_jax.classification.datasets import merge, protocol
from omni_jax.classification.episodes import sample_episode, to_device
from omni_jax.data.dataset import ImageDataset
from omni_jax.errors import OmniJaxError

from test_classification_protocols import _domain, _mini
from test_data_formats import _cub

ROOT = Path(__file__).resolve().parents[1]
FOUR = ("crossdomain_cub", "crossdomain_cars", "crossdomain_places", "crossdomain_plantae")
TINY = {"data.image_size": 8, "data.crop_padding": 1, "model.backbone": "conv4", "model.width": 4,
        "model.depth": 2, "train.num_steps": 2, "train.chunk_size": 2, "train.ckpt_every": 2,
        "train.val_every": 2, "train.val_tasks": 2, "train.n_way": 3, "train.k_shot": 1, "train.n_query": 3,
        "train.batch_size": 8, "eval.n_query": 3, "eval.num_tasks": 4, "eval.settings": ((3, 2), (3, 1)),
        "eval.finetune_epochs": 20}


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """MINI (CSV), CUB (CUB_200_2011 folders: 6/3/3 classes), M2C (both), CD (four JSON domains)."""
    root = tmp_path_factory.mktemp("paper")
    _mini(root / "mini", step=40)
    _cub(root / "cub", classes=12, per_class=5)
    _mini(root / "m2c" / "miniimagenet", step=40)
    _cub(root / "m2c", classes=12, per_class=5)
    for i, d in enumerate(("cub", "cars", "places", "plantae")):
        _domain(root / "cd", d, 30 * i, classes=4 + i, step=12)   # 4..7 classes per split: unequal domains
    return {"MINI": root / "mini", "CUB": root / "cub" / "CUB_200_2011", "M2C": root / "m2c", "CD": root / "cd"}


def tiny(cfg, **data):
    for field, value in TINY.items():
        group, name = field.split(".")
        cfg[group][name] = value
    for name, value in data.items():
        cfg.data[name] = value
    return cfg


# ---------------------------------------------------------------------------- the protocol and the fingerprint


def test_protocol_names_train_test_and_selection_datasets():
    p = protocol("miniimagenet", ",".join(FOUR))
    assert p == (("miniimagenet",), FOUR, "miniimagenet")
    assert protocol("miniimagenet", "crossdomain_cub", select_on="test").val == "crossdomain_cub"
    loo = protocol("loo:crossdomain_cars")
    assert loo.train == ("miniimagenet", "crossdomain_cub", "crossdomain_places", "crossdomain_plantae")
    assert loo.tests == ("crossdomain_cars",) and loo.val == "miniimagenet"
    assert protocol("loo:crossdomain_cars", select_on="test").val == "crossdomain_cars"
    with pytest.raises(OmniJaxError, match="config field data.select_on must be one of train, test, got 'val'"):
        protocol("miniimagenet", select_on="val")
    with pytest.raises(OmniJaxError, match=r"data.select_on='test' .* names 2 \(crossdomain_cub, crossdomain_cars\)"):
        protocol("miniimagenet", "crossdomain_cub,crossdomain_cars", select_on="test")
    with pytest.raises(OmniJaxError, match="lists crossdomain_cub twice"):
        protocol("miniimagenet", "crossdomain_cub,crossdomain_cub")
    with pytest.raises(OmniJaxError, match="has an empty name"):
        protocol("miniimagenet", "crossdomain_cub,,crossdomain_cars")
    with pytest.raises(OmniJaxError, match="config field data.test_dataset: unknown dataset 'cars'"):
        protocol("miniimagenet", "crossdomain_cub,cars")


def _old_fingerprint(cfg, method):
    """The fingerprint as omni-jax wrote it before data.select_on, data.domain_episodes and model.head_bn."""
    old = copy.deepcopy(cfg)
    del old.data["select_on"], old.data["domain_episodes"], old.model["head_bn"]
    return config_lib.fingerprint(old, method, ["data", "model", "train"],
                                  drop=("data.dir", "data.dirs", "data.test_split", "train.methods",
                                        "train.ckpt_every", "train.maml_task_chunk"),
                                  added={"model.gnn_graph": "query"}, omni=experiment.spec_for(cfg, method).omni)


@pytest.mark.parametrize("method", ["omni_proto", "protonet"])
def test_the_test_datasets_leave_the_fingerprint_unless_selection_reads_one(method):
    cfg = config_lib.load_config("classify_crossdomain")
    fp = lambda **data: experiment.fingerprint(tiny(copy.deepcopy(cfg), **data), method)
    table4 = fp()
    # one training for the four domains, and it is the plain mini-ImageNet training of the same config
    assert table4 == fp(test_dataset="crossdomain_cars") == fp(test_dataset="") == fp(test_dataset=FOUR[0])
    assert table4 == _old_fingerprint(tiny(copy.deepcopy(cfg), test_dataset=""), method)
    assert table4 != fp(dataset="cub")
    # selected on the unseen domain, the domain is part of the training; earlier work directories resume
    on_cub = fp(test_dataset="crossdomain_cub", select_on="test")
    assert on_cub != table4 and on_cub != fp(test_dataset="crossdomain_cars", select_on="test")
    assert on_cub == _old_fingerprint(tiny(copy.deepcopy(cfg), test_dataset="crossdomain_cub"), method)
    # leave-one-out: balanced episodes and selection on mini-ImageNet are a new training; the old
    # pooled one selected on the held-out domain still resumes
    loo = dict(dataset="loo:crossdomain_cars", test_dataset="")
    old = _old_fingerprint(tiny(copy.deepcopy(cfg), **loo), method)
    assert fp(**loo, select_on="test", domain_episodes="pooled") == old
    news = [fp(**loo), fp(**loo, domain_episodes="pooled"), fp(**loo, select_on="test")]
    assert all(f != old for f in news) and len({json.dumps(f, sort_keys=True) for f in news}) == 3
    assert fp(**loo) == fp(dataset="loo:crossdomain_cars", test_dataset="crossdomain_cars")


# ---------------------------------------------------------------------------- leave-one-out episodes


def _domains(class_counts, per_class=6):
    parts = [ImageDataset(np.zeros((n * per_class, 2, 2, 1), np.uint8), np.repeat(np.arange(n), per_class).astype(np.int32),
                          [f"c{c}" for c in range(n)], name=f"d{i}") for i, n in enumerate(class_counts)]
    return merge(parts, [f"d{i}" for i in range(len(parts))])


def _episode_domains(split, merged, n=3000, n_way=5):
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    classes = jax.device_get(jax.jit(jax.vmap(lambda k: sample_episode(k, split, n_way, 1, 2)["classes"]))(keys))
    return np.asarray(merged.class_domain)[classes]   # [episodes, n_way]: the domain of each class


def test_balanced_episodes_come_from_one_domain_each_and_the_domains_are_balanced():
    merged = _domains((40, 8, 5, 20))
    dom = _episode_domains(to_device(merged, by_domain=True), merged)
    assert np.all(dom == dom[:, :1])                             # every episode from one domain
    counts = np.bincount(dom[:, 0], minlength=4)
    n, p = len(dom), 1 / 4
    assert np.all(np.abs(counts - n * p) < 5 * np.sqrt(n * p * (1 - p))), counts   # 750 each, +- 5 sigma
    # pooled (the old behaviour): episodes mix domains, each drawn as often as its share of the classes
    pooled = _episode_domains(to_device(merged), merged)
    assert np.mean(np.all(pooled == pooled[:, :1], axis=1)) < 0.5
    share = np.bincount(pooled.ravel(), minlength=4) / pooled.size
    np.testing.assert_allclose(share, np.array([40, 8, 5, 20]) / 73, atol=0.02)


def test_a_domain_too_small_for_an_episode_is_never_drawn():
    merged = _domains((10, 3, 7))   # 3 classes cannot give a 5-way episode
    dom = _episode_domains(to_device(merged, by_domain=True), merged, n=600)
    assert np.all(dom == dom[:, :1]) and set(np.unique(dom)) == {0, 2}


def _loo_cfg(fixtures, **data):
    cfg = tiny(config_lib.load_config("classify_multidomain"), dataset="loo:crossdomain_cars", dir=str(fixtures["CD"]),
               dirs=f"miniimagenet={fixtures['MINI']}", **data)
    experiment.check(cfg)
    return cfg


def test_leave_one_out_data_selects_on_mini_imagenet_and_samples_by_domain(fixtures):
    data = experiment.load_data(_loo_cfg(fixtures))
    train = data.splits["train"]
    assert tuple(train.domain_names) == ("miniimagenet", "crossdomain_cub", "crossdomain_places", "crossdomain_plantae")
    # selection reads mini-ImageNet's validation split (Tseng et al.'s miniImagenet/val.json) ...
    assert data.val_dataset == "miniimagenet" and list(data.splits["val"].class_names) == [f"n1{c}" for c in range(4)]
    assert list(data.tests) == ["crossdomain_cars"]
    assert list(data.splits["test"].class_names) == [f"cars_{c}" for c in range(10, 15)]
    # ... and the training episodes are single-domain and balanced on the very split the run trains on
    dom = _episode_domains(data.device["train"], train, n=2000, n_way=3)
    assert np.all(dom == dom[:, :1])
    counts = np.bincount(dom[:, 0], minlength=4)
    assert np.all(np.abs(counts - 500) < 5 * np.sqrt(2000 * 0.25 * 0.75)), counts
    # the options: the held-out domain's validation split, and pooled episodes
    held = experiment.load_data(_loo_cfg(fixtures, select_on="test", domain_episodes="pooled"))
    assert held.val_dataset == "crossdomain_cars"
    assert list(held.splits["val"].class_names) == [f"cars_{c}" for c in range(5, 10)]
    assert held.device["train"].domain_classes is None


def test_a_training_domain_with_too_few_classes_for_its_episodes_is_an_error(fixtures):
    cfg = _loo_cfg(fixtures, select_on="test")   # the held-out Cars fixture has 5 validation classes
    cfg.train.n_way, cfg.eval.settings = 5, ((5, 1),)   # mini-ImageNet's fixture has 4 training classes
    with pytest.raises(OmniJaxError, match="training domain miniimagenet has 4 classes, fewer than train.n_way=5"):
        experiment.load_data(cfg)


# ---------------------------------------------------------------------------- the table


def test_table_has_one_column_group_per_test_dataset_within_100_columns():
    records = [{"test_dataset": t, "method": m, "head": "ensemble", "n_way": 5, "k_shot": k,
                "accuracy": 60 + i + k, "ci95": 0.5} for i, t in enumerate(FOUR) for m in ("omni_proto", "protonet")
               for k in (5, 1)]
    table = experiment.results_table(records)
    assert max(len(line) for line in table.splitlines()) <= 100
    blocks = table.split("\n\n")
    assert len(blocks) == 2 and all(t in table for t in FOUR)
    first = blocks[0].splitlines()
    assert "crossdomain_cub" in first[0] and "crossdomain_cars" in first[0]
    assert first[1].split()[:2] == ["method", "head"] and first[1].count("5-way 5-shot") == 2
    assert "63.00 ± 0.50" in blocks[1].splitlines()[2]   # places, 1-shot: 60 + 2 + 1
    # one test dataset: the table as before, no group line
    one = experiment.results_table([r for r in records if r["test_dataset"] == FOUR[0]])
    assert one.splitlines()[0].startswith("method")


# ---------------------------------------------------------------------------- the documented commands, end to end


def documented_commands():
    """The ``omni-jax classify`` commands of docs/classification.md's section on the real datasets."""
    text = (ROOT / "docs" / "classification.md").read_text()
    section = text.split("## Running Tables 2–5 on the real datasets", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    omni-jax classify ")]


def test_the_documented_commands_cover_every_table_with_a_packaged_config():
    commands = documented_commands()
    configs = [shlex.split(c)[shlex.split(c).index("--config") + 1] for c in commands]
    assert set(configs) == {"classify_miniimagenet", "classify_cub", "classify_mini2cub", "classify_crossdomain",
                            "classify_multidomain"}
    loo = sorted(re.search(r"--dataset (loo:\S+)", c).group(1) for c in commands if "loo:" in c)
    assert loo == sorted(f"loo:{d}" for d in FOUR)
    for name, backbone in [("classify_crossdomain", "resnet10"), ("classify_multidomain", "resnet10"),
                           ("classify_miniimagenet", "resnet18"), ("classify_mini2cub", "resnet18")]:
        cfg = config_lib.load_config(name)
        assert (cfg.model.backbone, cfg.data.image_size) == (backbone, 224), name
    assert config_lib.load_config("classify_crossdomain").data.test_dataset == ",".join(FOUR)


def _run(command, fixtures, workdir, *extra):
    argv = shlex.split(command)[1:]
    argv = [str(fixtures[a]) if a in fixtures else a for a in argv]
    argv = [re.sub(r"=(MINI|CUB|M2C|CD)\b", lambda m: "=" + str(fixtures[m.group(1)]), a) for a in argv]
    argv[argv.index("--method") + 1] = "omni_proto"   # one method: the protocol is under test, not the methods
    overrides = [f"--config.{f}={v!r}" for f, v in TINY.items() if f != "model.backbone"]
    return cli.main(argv + overrides + ["--backbone", "conv4", "--no-progress", "--workdir", str(workdir), *extra])


@pytest.mark.slow
def test_table4_is_one_training_tested_on_four_domains(fixtures, tmp_path, capsys):
    command = next(c for c in documented_commands() if "classify_crossdomain" in c)
    wd = tmp_path / "table4"
    assert _run(command, fixtures, wd) == 0
    out = capsys.readouterr().out
    records = json.loads((wd / "results.json").read_text())
    assert [r["test_dataset"] for r in records] == [d for d in FOUR for _ in range(2)]
    assert {r["val_dataset"] for r in records} == {"miniimagenet"} and {r["dataset"] for r in records} == {"miniimagenet"}
    # trained once: one method folder, its steps once in its metrics; one column group per domain
    assert sorted(p.name for p in wd.iterdir() if p.is_dir()) == ["evaluations", "omni_proto"]
    steps = [json.loads(line)["step"] for line in (wd / "omni_proto" / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == len(set(steps)) and max(steps) == 2
    assert all(d in out for d in FOUR) and "selected on miniimagenet's validation split" in out
    print(out[out.index("Few-shot"):], file=sys.__stdout__)
    # the same checkpoint tested on one domain: no training, the same numbers as that column
    before = (wd / "omni_proto" / "metrics.jsonl").read_text()
    assert _run(command, fixtures, wd, "--eval-only", "--test-dataset", "crossdomain_cars") == 0
    cars = json.loads((wd / "results.json").read_text())
    assert [(r["k_shot"], r["accuracy"]) for r in cars] == [(r["k_shot"], r["accuracy"]) for r in records
                                                             if r["test_dataset"] == "crossdomain_cars"]
    assert (wd / "omni_proto" / "metrics.jsonl").read_text() == before
    # selecting on the unseen domain is another training: the checkpoint is not this one's
    capsys.readouterr()
    assert _run(command, fixtures, wd, "--eval-only", "--test-dataset", "crossdomain_cars",
                "--config.data.select_on='test'") == 2
    assert "data.test_dataset (was '', now 'crossdomain_cars')" in capsys.readouterr().err


OTHERS = [c for c in documented_commands() if "classify_crossdomain" not in c and "resnet12" not in c]


@pytest.mark.slow
@pytest.mark.parametrize("command", OTHERS, ids=[re.search(r"--config (\S+)( --dataset (\S+))?", c).group(0).split()[-1]
                                                  for c in OTHERS])
def test_tables_2_3_5_commands_run_end_to_end(command, fixtures, tmp_path, capsys):
    """Every documented command but Table 4's (above) and the ResNet-12 one (conv4 at 8 px here, as the
    first); one test setting each, to keep them short."""
    wd = tmp_path / "run"
    assert _run(command, fixtures, wd, "--config.eval.settings=((3, 2),)") == 0, command
    out = capsys.readouterr().out
    records = json.loads((wd / "results.json").read_text())
    held = re.search(r"--dataset loo:(\S+)", command)
    if held:   # Table 5: tested on the held-out domain, selected on mini-ImageNet
        assert {r["test_dataset"] for r in records} == {held.group(1)}
        assert {r["val_dataset"] for r in records} == {"miniimagenet"}
        assert "selected on miniimagenet's validation split" in out
        print(out[out.rindex("Few-shot"):], file=sys.__stdout__)
    else:      # Tables 2, 3: the config's dataset, trained, selected and tested
        cfg = config_lib.load_config(shlex.split(command)[shlex.split(command).index("--config") + 1])
        assert {r["test_dataset"] for r in records} == {cfg.data.dataset} == {r["val_dataset"] for r in records}
