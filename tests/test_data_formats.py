"""The on-disk dataset loaders, on tiny fixture datasets written here in each format."""
import csv
import io
import json
import logging
import pickle

import numpy as np
import pytest
from PIL import Image

from omni_jax.data.dataset import ImageDataset
from omni_jax.data.formats import load_dataset
from omni_jax.data.formats.cub import split_of_class
from omni_jax.data.splits import check_episodes, drop_small_classes
from omni_jax.errors import OmniJaxError


def _img(value, size=(8, 8)):
    """A solid RGB image whose red channel is ``value``: the label can be read back from pixels."""
    a = np.zeros(size[::-1] + (3,), np.uint8)
    a[..., 0] = value
    a[..., 1] = 100
    return Image.fromarray(a)


def _write(path, value, fmt="PNG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    _img(value).save(path, fmt)


# ---------------------------------------------------------------- mini-ImageNet

def _mini_csv(root, classes=4, per_class=3, splits=("train", "val", "test")):
    for s, split in enumerate(splits):
        rows = [("filename", "label")]
        for c in range(classes):
            for k in range(per_class):
                name = f"{split}{c}_{k}.png"
                _write(root / "images" / name, 10 * c + 50 * s)
                rows.append((name, f"n0{s}{c}"))
        with open(root / f"{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)


def test_miniimagenet_csv(tmp_path):
    _mini_csv(tmp_path)
    ds = load_dataset("miniimagenet", tmp_path, "train", image_size=6)
    assert ds.images.shape == (12, 6, 6, 3) and ds.images.dtype == np.uint8
    assert list(ds.class_names) == ["n000", "n001", "n002", "n003"]
    np.testing.assert_array_equal(ds.class_counts(), [3, 3, 3, 3])
    # each image carries its class in the red channel
    np.testing.assert_array_equal(ds.images[:, 0, 0, 0], 10 * ds.labels)
    test = load_dataset("miniimagenet", tmp_path, "novel", image_size=6)
    assert test.class_names[0] == "n020" and test.images[0, 0, 0, 0] == 100


def test_miniimagenet_csv_bad_header_and_missing_image(tmp_path):
    _mini_csv(tmp_path, splits=("train",))
    (tmp_path / "val.csv").write_text("file,class\na.png,n1\n")
    with pytest.raises(OmniJaxError, match=r"val.csv must start with the header 'filename,label'"):
        load_dataset("miniimagenet", tmp_path, "val")
    (tmp_path / "images" / "train0_0.png").unlink()
    with pytest.raises(OmniJaxError, match=r"train0_0.png is missing"):
        load_dataset("miniimagenet", tmp_path, "train")


def test_undecodable_images_skip_or_raise(tmp_path, caplog):
    _mini_csv(tmp_path, splits=("train",))
    (tmp_path / "images" / "train1_2.png").write_bytes(b"not an image")
    with caplog.at_level(logging.WARNING, logger="omni_jax.data"):
        ds = load_dataset("miniimagenet", tmp_path, "train", image_size=8, on_error="skip")
    assert len(ds.labels) == 11
    np.testing.assert_array_equal(ds.class_counts(), [3, 2, 3, 3])
    assert "skipped 1 undecodable image(s) of 12" in caplog.text and "train1_2.png" in caplog.text
    with pytest.raises(OmniJaxError, match=r"cannot decode image .*train1_2.png"):
        load_dataset("miniimagenet", tmp_path, "train", image_size=8, on_error="raise")


def test_miniimagenet_pickle(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (10, 84, 84, 3), dtype=np.uint8)
    with open(tmp_path / "mini-imagenet-cache-train.pkl", "wb") as f:
        pickle.dump({"image_data": data, "class_dict": {"n2": [1, 3, 5, 7, 9], "n1": [0, 2, 4, 6, 8]}}, f)
    ds = load_dataset("miniimagenet", tmp_path, "train", image_size=None)
    assert list(ds.class_names) == ["n1", "n2"]
    np.testing.assert_array_equal(ds.images[ds.labels == 0], data[[0, 2, 4, 6, 8]])
    np.testing.assert_array_equal(ds.images[ds.labels == 1], data[[1, 3, 5, 7, 9]])
    small = load_dataset("miniimagenet", tmp_path, "train", image_size=16)
    assert small.images.shape == (10, 16, 16, 3)
    with open(tmp_path / "mini-imagenet-cache-val.pkl", "wb") as f:
        pickle.dump({"images": data}, f)
    with pytest.raises(OmniJaxError, match=r"must hold a dict with 'image_data' and 'class_dict'"):
        load_dataset("miniimagenet", tmp_path, "val")
    (tmp_path / "mini-imagenet-cache-test.pkl").write_bytes(b"\x80\x04garbage")
    with pytest.raises(OmniJaxError, match=r"mini-imagenet-cache-test.pkl is not a readable pickle"):
        load_dataset("miniimagenet", tmp_path, "test")


def test_miniimagenet_class_folders(tmp_path):
    for c in range(3):
        for k in range(2):
            _write(tmp_path / "val" / f"n{c}" / f"{k}.jpg", 40 * c, fmt="JPEG")
    (tmp_path / "val" / "n0" / "notes.txt").write_text("ignored")
    ds = load_dataset("miniimagenet", tmp_path, "val", image_size=8)
    assert ds.images.shape == (6, 8, 8, 3) and list(ds.class_names) == ["n0", "n1", "n2"]
    assert abs(int(ds.images[ds.labels == 2][0, 4, 4, 0]) - 80) <= 3  # JPEG


def test_missing_data_dir_and_layout(tmp_path):
    with pytest.raises(OmniJaxError, match=r"data directory .*nowhere not found; mini-ImageNet is not downloaded"):
        load_dataset("miniimagenet", tmp_path / "nowhere", "train")
    with pytest.raises(OmniJaxError, match=r"has none of train.csv, mini-imagenet-cache-train.pkl or a train/ folder"):
        load_dataset("miniimagenet", tmp_path, "train")
    with pytest.raises(OmniJaxError, match=r"unknown dataset 'imagenet'"):
        load_dataset("imagenet", tmp_path, "train")
    with pytest.raises(OmniJaxError, match=r"unknown split 'training'"):
        load_dataset("miniimagenet", tmp_path, "training")


# ---------------------------------------------------------------- CUB

def _cub(root, classes=8, per_class=2):
    root = root / "CUB_200_2011"
    lines_cls, lines_img, lines_lab = [], [], []
    i = 0
    for c in range(1, classes + 1):
        name = f"{c:03d}.Bird_{c}"
        lines_cls.append(f"{c} {name}")
        for k in range(per_class):
            i += 1
            rel = f"{name}/{name}_{k}.jpg"
            _write(root / "images" / rel, 20 * c, fmt="JPEG")
            lines_img.append(f"{i} {rel}")
            lines_lab.append(f"{i} {c}")
    (root / "classes.txt").write_text("\n".join(lines_cls) + "\n")
    (root / "images.txt").write_text("\n".join(lines_img) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(lines_lab) + "\n")
    return root


def test_cub_paper_split_is_100_50_50_and_disjoint():
    splits = [split_of_class(i) for i in range(200)]
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (100, 50, 50)
    assert splits[:8] == ["train", "val", "train", "test"] * 2


def test_cub_folder_layout(tmp_path):
    _cub(tmp_path)
    parts = {s: load_dataset("cub", tmp_path, s, image_size=8) for s in ("train", "val", "test")}
    assert list(parts["train"].class_names) == ["001.Bird_1", "003.Bird_3", "005.Bird_5", "007.Bird_7"]
    assert list(parts["val"].class_names) == ["002.Bird_2", "006.Bird_6"]
    assert list(parts["test"].class_names) == ["004.Bird_4", "008.Bird_8"]
    red = parts["test"].images[parts["test"].labels == 1][:, 4, 4, 0]
    assert np.all(np.abs(red.astype(int) - 160) <= 3)
    with pytest.raises(OmniJaxError, match=r"image_class_labels.txt not found"):
        (tmp_path / "CUB_200_2011" / "image_class_labels.txt").unlink()
        load_dataset("cub", tmp_path, "train")


def test_mini2cub(tmp_path):
    _mini_csv(tmp_path / "miniimagenet", classes=2, per_class=2)
    _cub(tmp_path)
    train = load_dataset("mini2cub", tmp_path, "train", image_size=8)
    assert train.num_classes == 6 and len(train.labels) == 12  # all three mini-ImageNet splits
    assert len(set(train.class_names)) == 6
    val, test = (load_dataset("mini2cub", tmp_path, s, image_size=8) for s in ("val", "test"))
    assert list(val.class_names) == ["002.Bird_2", "006.Bird_6"]
    assert list(test.class_names) == ["004.Bird_4", "008.Bird_8"]


# ---------------------------------------------------------------- cross-domain JSON

def test_crossdomain_json_with_foreign_absolute_paths(tmp_path):
    names = ["cls_a", "cls_b", "cls_c", "cls_d"]
    dom = tmp_path / "Cars"
    image_names, labels = [], []
    for c in (1, 3):  # novel classes with global labels 1 and 3
        for k in range(3):
            rel = f"cars_train/{names[c]}_{k}.png"
            _write(dom / "images" / rel, 30 * c)
            image_names.append(f"/home/someone/data/cars/images/{rel}")
            labels.append(c)
    (dom / "novel.json").write_text(json.dumps({"label_names": names, "image_names": image_names,
                                                "image_labels": labels}))
    ds = load_dataset("crossdomain_cars", tmp_path, "test", image_size=8)
    assert list(ds.class_names) == ["cls_b", "cls_d"]
    np.testing.assert_array_equal(ds.images[:, 0, 0, 0], np.where(ds.labels == 0, 30, 90))
    with pytest.raises(OmniJaxError, match=r"base.json not found"):
        load_dataset("crossdomain_cars", tmp_path, "train")
    (dom / "val.json").write_text(json.dumps({"label_names": names, "image_names": ["x.png"],
                                              "image_labels": [0, 1]}))
    with pytest.raises(OmniJaxError, match=r"val.json has 1 image_names but 2 image_labels"):
        load_dataset("crossdomain_cars", tmp_path, "val")
    (dom / "val.json").write_text(json.dumps({"label_names": names, "image_names": ["/a/b/missing.png"],
                                              "image_labels": [0]}))
    with pytest.raises(OmniJaxError, match=r"image /a/b/missing.png listed in .*val.json not found"):
        load_dataset("crossdomain_cars", tmp_path, "val")


# ---------------------------------------------------------------- TFDS without TensorFlow

def _write_prepared_tfds(data_dir, name, splits, class_names, channels):
    """A prepared TFDS dataset in the array_record format, written without TensorFlow."""
    import tensorflow_datasets as tfds
    from array_record.python.array_record_module import ArrayRecordWriter
    from tensorflow_datasets.core import example_serializer

    folder = data_dir / name / "1.0.0"
    folder.mkdir(parents=True)
    feats = tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(None, None, channels)),
                                        "label": tfds.features.ClassLabel(names=class_names)})
    ser = example_serializer.ExampleSerializer(feats.get_serialized_info())
    infos = []
    for split, examples in splits.items():
        w = ArrayRecordWriter(str(folder / f"{name}-{split}.array_record-00000-of-00001"), "group_size:1")
        for img, label in examples:
            buf = io.BytesIO()
            Image.fromarray(img.squeeze()).save(buf, "PNG")
            w.write(ser.serialize_example({"image": buf.getvalue(), "label": label}))
        w.close()
        infos.append(tfds.core.SplitInfo(name=split, shard_lengths=[len(examples)], num_bytes=0))
    info = tfds.core.DatasetInfo(builder=tfds.core.DatasetIdentity(name=name, version="1.0.0", data_dir=str(folder),
                                                                   module_name="fixture"),
                                 features=feats, split_dict=tfds.core.SplitDict(infos))
    info.set_file_format("array_record")
    info.write_to_directory(str(folder))
    return folder


def test_tfds_reads_prepared_array_record_without_tensorflow(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    pytest.importorskip("array_record")
    names = [f"car{i}" for i in range(8)]
    ex = {s: [(np.full((10, 12, 3), 10 * (i % 8), np.uint8), i % 8) for i in range(n)]
          for s, n in (("train", 16), ("test", 8))}
    _write_prepared_tfds(tmp_path, "cars196", ex, names, 3)
    train = load_dataset("tfds:cars196", tmp_path, "train", image_size=6)
    assert list(train.class_names) == ["car0", "car2", "car4", "car6"]  # the class split, pooled over TFDS splits
    assert train.images.shape == (12, 6, 6, 3)
    np.testing.assert_array_equal(train.images[:, 0, 0, 0], 20 * train.labels)
    test = load_dataset("tfds:cars196", tmp_path, "test", image_size=6)
    assert list(test.class_names) == ["car3", "car7"]
    raw = load_dataset("tfds:cars196", tmp_path, "train", image_size=6, tfds_split="test")
    assert raw.num_classes == 8 and len(raw.labels) == 8


def test_tfds_omniglot_background_vs_evaluation(tmp_path):
    pytest.importorskip("array_record")
    names = [f"char{i}" for i in range(6)]
    ex = {"train": [(np.full((9, 9, 3), 40 * c, np.uint8), c) for c in (0, 1, 2) for _ in range(2)],
          "test": [(np.full((9, 9, 3), 40 * c, np.uint8), c) for c in (3, 4, 5) for _ in range(2)]}
    _write_prepared_tfds(tmp_path, "omniglot", ex, names, 3)
    train = load_dataset("tfds:omniglot", tmp_path, "train", image_size=4)
    assert list(train.class_names) == ["char0", "char1", "char2"] and train.images.shape[-1] == 1
    assert list(load_dataset("tfds:omniglot", tmp_path, "val", image_size=4).class_names) == ["char3", "char5"]
    assert list(load_dataset("tfds:omniglot", tmp_path, "test", image_size=4).class_names) == ["char4"]


def test_tfds_missing_or_wrong_format_never_downloads(tmp_path):
    with pytest.raises(OmniJaxError, match=r"cars196/<version>/dataset_info.json not found; prepare it once .*"
                                           r"tfds build cars196"):
        load_dataset("tfds:cars196", tmp_path, "train")
    folder = tmp_path / "caltech_birds2011" / "0.1.1"
    folder.mkdir(parents=True)
    (folder / "dataset_info.json").write_text("{}")
    (folder / "caltech_birds2011-train.tfrecord-00000-of-00001").write_bytes(b"")
    with pytest.raises(OmniJaxError, match=r"no \*.array_record-\* shards \(found .*tfrecord.*another file format\)"):
        load_dataset("tfds:caltech_birds2011", tmp_path, "train")


# ---------------------------------------------------------------- episode checks

def _toy(counts):
    labels = np.repeat(np.arange(len(counts)), counts).astype(np.int32)
    return ImageDataset(np.zeros((len(labels), 2, 2, 1), np.uint8), labels, [f"c{i}" for i in range(len(counts))],
                        name="toy")


def test_check_episodes():
    check_episodes(_toy([5, 5, 5]), n_way=3, k_shot=1, n_query=4)
    with pytest.raises(OmniJaxError, match=r"toy: the split has 3 classes, fewer than n_way=5"):
        check_episodes(_toy([5, 5, 5]), n_way=5, k_shot=1, n_query=4)
    with pytest.raises(OmniJaxError, match=r"toy: 1 class\(es\) have fewer than k_shot\+n_query=6 images: c1 \(5\)"):
        check_episodes(_toy([6, 5, 6]), n_way=2, k_shot=1, n_query=5)
    kept = drop_small_classes(_toy([6, 5, 6]), 6)
    assert list(kept.class_names) == ["c0", "c2"] and list(kept.class_counts()) == [6, 6]
    check_episodes(kept, n_way=2, k_shot=1, n_query=5)
