"""Cross-dataset protocols (Tables 4 and 5) on tiny fixture datasets in the on-disk formats:
mini-ImageNet's CSV layout and the cross-domain benchmark's JSON split files."""
import csv
import json

import numpy as np
import pytest
from PIL import Image

from omni_jax import cli
from omni_jax.classification.datasets import load_protocol, parse_dirs, resolve
from omni_jax.errors import OmniJaxError

PER_CLASS = 5


def _img(path, red):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.zeros((8, 8, 3), np.uint8)
    a[..., 0] = red % 256
    a[..., 1] = np.arange(8)[:, None] * 20   # some texture
    Image.fromarray(a).save(path)


def _mini(root, classes=4, step=1):
    """mini-ImageNet's layout: images/ and train/val/test.csv (filename,label); red = 10 + step * class."""
    for s, split in enumerate(("train", "val", "test")):
        rows = [("filename", "label")]
        for c in range(classes):
            for k in range(PER_CLASS):
                name = f"{split}{c}_{k}.png"
                _img(root / "images" / name, 10 + step * c)
                rows.append((name, f"n{s}{c}"))
        with open(root / f"{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)


def _domain(root, domain, red0, classes=4, step=1):
    """The cross-domain benchmark's base/val/novel.json in root/<domain>, naming the images by absolute
    paths of another machine (/elsewhere/...); red = red0 + step * class (modulo 256)."""
    dom = root / domain
    names = [f"{domain}_{c}" for c in range(3 * classes)]
    for s, file in enumerate(("base.json", "val.json", "novel.json")):
        image_names, labels = [], []
        for c in range(s * classes, (s + 1) * classes):
            for k in range(PER_CLASS):
                rel = f"images/{names[c]}_{k}.png"
                _img(dom / rel, red0 + step * c)
                image_names.append(f"/elsewhere/{domain}/{rel}")
                labels.append(c)
        (dom / file).write_text(json.dumps({"label_names": names, "image_names": image_names,
                                            "image_labels": labels}))


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    _mini(root / "mini")
    _domain(root / "cd", "cub", 100)
    _domain(root / "cd", "cars", 150)
    return root


def test_resolve_and_dirs():
    assert resolve("miniimagenet") == (("miniimagenet",), "miniimagenet")
    assert resolve("miniimagenet", "crossdomain_cub") == (("miniimagenet",), "crossdomain_cub")
    assert resolve("loo:crossdomain_cars") == (("miniimagenet", "crossdomain_cub", "crossdomain_places",
                                               "crossdomain_plantae"), "crossdomain_cars")
    assert resolve("miniimagenet+cub", "crossdomain_cub") == (("miniimagenet", "cub"), "crossdomain_cub")
    with pytest.raises(OmniJaxError, match="data.test_dataset"):
        resolve("miniimagenet+cub")
    # an unknown name is said first, before any talk of folders or test datasets
    with pytest.raises(OmniJaxError, match="config field data.dataset: unknown dataset 'nope'; expected one of"):
        resolve("miniimagenet+nope")
    with pytest.raises(OmniJaxError, match="config field data.test_dataset: unknown dataset 'nope'"):
        resolve("miniimagenet", "nope")
    assert resolve("synthetic") == (("synthetic",), "synthetic")
    with pytest.raises(OmniJaxError, match="held-out domain must be one of"):
        resolve("loo:omniglot")
    assert parse_dirs("a=/x, b=/y") == {"a": "/x", "b": "/y"}
    with pytest.raises(OmniJaxError, match="data.dirs"):
        parse_dirs("a:/x")


def test_train_on_one_dataset_test_on_another_selecting_on_either(fixtures):
    dirs = {"miniimagenet": str(fixtures / "mini"), "crossdomain_cub": str(fixtures / "cd")}
    # selection on the training dataset's validation split (Tseng et al.; the default)
    splits = load_protocol("miniimagenet", None, 8, test_dataset="crossdomain_cub", dirs=dirs)
    np.testing.assert_array_equal(splits["train"].images[:, 0, 0, 0], 10 + splits["train"].labels)
    assert list(splits["val"].class_names) == [f"n1{c}" for c in range(4)]
    np.testing.assert_array_equal(splits["test"].images[:, 0, 0, 0], 108 + splits["test"].labels)
    # or on the test dataset's (select_on="test")
    splits = load_protocol("miniimagenet", None, 8, test_dataset="crossdomain_cub", select_on="test", dirs=dirs)
    assert list(splits["val"].class_names) == [f"cub_{c}" for c in range(4, 8)]
    np.testing.assert_array_equal(splits["val"].images[:, 0, 0, 0], 104 + splits["val"].labels)
    np.testing.assert_array_equal(splits["test"].images[:, 0, 0, 0], 108 + splits["test"].labels)


def test_leave_one_domain_out_merges_the_other_training_sets(fixtures):
    domains = ("miniimagenet", "crossdomain_cub", "crossdomain_cars")
    splits = load_protocol("loo:crossdomain_cub", str(fixtures / "cd"), 8, domains=domains,
                           dirs={"miniimagenet": str(fixtures / "mini")})
    train = splits["train"]
    assert train.num_classes == 8 and train.class_names[0] == "miniimagenet/n00"
    assert train.class_names[4] == "crossdomain_cars/cars_0"
    red = train.images[:, 0, 0, 0].astype(int)
    np.testing.assert_array_equal(red, np.where(train.labels < 4, 10 + train.labels, 150 + train.labels - 4))
    assert list(splits["test"].class_names) == [f"cub_{c}" for c in range(8, 12)]
    assert tuple(train.domain_names) == ("miniimagenet", "crossdomain_cars")
    np.testing.assert_array_equal(train.class_domain, [0] * 4 + [1] * 4)
    assert list(splits["val"].class_names) == [f"n1{c}" for c in range(4)]   # mini-ImageNet's, as Tseng et al.
    held = load_protocol("loo:crossdomain_cub", str(fixtures / "cd"), 8, domains=domains, select_on="test",
                         dirs={"miniimagenet": str(fixtures / "mini")})
    assert list(held["val"].class_names) == [f"cub_{c}" for c in range(4, 8)]


@pytest.mark.slow
def test_cli_cross_dataset_and_leave_one_out_runs(fixtures, tmp_path):
    base = ["--no-progress", "--config.data.image_size=8", "--config.model.width=4", "--config.model.depth=2",
            "--config.train.num_steps=2", "--config.train.chunk_size=2", "--config.train.ckpt_every=2",
            "--config.train.val_every=2", "--config.train.val_tasks=2", "--config.train.n_way=3",
            "--config.train.k_shot=1", "--config.train.n_query=3", "--config.train.batch_size=8",
            "--config.eval.n_query=3", "--config.eval.num_tasks=4", "--config.eval.settings=((3, 1),)",
            "--config.eval.finetune_epochs=2", "--config.data.crop_padding=1", "--method", "protonet"]
    dirs = f"--config.data.dirs=miniimagenet={fixtures / 'mini'},crossdomain_cub={fixtures / 'cd'}"
    wd = tmp_path / "table4"
    assert cli.main(["classify", "--dataset", "miniimagenet", "--test-dataset", "crossdomain_cub", dirs,
                     "--workdir", str(wd)] + base) == 0
    records = json.loads((wd / "results.json").read_text())
    assert records[0]["dataset"] == "miniimagenet" and records[0]["test_dataset"] == "crossdomain_cub"
    wd = tmp_path / "table5"
    assert cli.main(["classify", "--dataset", "loo:crossdomain_cars", "--data-dir", str(fixtures / "cd"), dirs,
                     "--config.data.domains=('miniimagenet', 'crossdomain_cub', 'crossdomain_cars')",
                     "--workdir", str(wd)] + base) == 0
    assert json.loads((wd / "results.json").read_text())[0]["test_dataset"] == "crossdomain_cars"
    # A bad protocol is a one-line error before anything is written.
    bad = tmp_path / "bad"
    assert cli.main(["classify", "--dataset", "miniimagenet+crossdomain_cub", "--workdir", str(bad)] + base) == 2
    assert not bad.exists()
