"""The three splits of a classification dataset: the data package's loaders, or a synthetic set.

``synthetic`` needs no files: each class is a random smooth template and its
images are noisy, shifted copies. It is for smoke runs and tests only.

Cross-dataset protocols (paper §6.1, Tables 4 and 5), as the glyph benchmark's
``cross_domain`` and ``loo_<group>`` protocols do it for glyphs:

* train on one dataset, test on others (Table 4, mini-ImageNet to CUB, Cars,
  Places, Plantae): ``test_dataset`` (``--test-dataset``) names the test
  dataset, or several joined by ``,`` (one training, tested on each);
* several training datasets joined by ``+`` (``miniimagenet+crossdomain_cars``):
  their training splits are merged, each class keeping its own label and
  the merged split remembering each class's dataset (its *domain*);
* leave one domain out over a list of datasets (Table 5):
  ``loo:<held-out>`` trains on the training splits of every other dataset of
  ``domains`` and tests on the held-out one (:func:`protocol`).

Model selection reads the validation split of one dataset (``select_on``):
``"train"``, the (first) training dataset's, as Tseng et al. do in both
settings (their ``miniImagenet/val.json``); ``"test"``, the test dataset's.

Each dataset is read from ``dirs[name]`` when given, else from ``data_dir``.
"""
from __future__ import annotations

from typing import Dict, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from omni_jax.data.dataset import ImageDataset
from omni_jax.errors import OmniJaxError

SPLITS = ("train", "val", "test")


def synthetic_split(num_classes: int, per_class: int, size: int = 28, channels: int = 1, seed: int = 0,
                    name: str = "synthetic", noise: float = 0.35) -> ImageDataset:
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, (num_classes, 7, 7, channels))
    templates = np.repeat(np.repeat(coarse, -(-size // 7), axis=1), -(-size // 7), axis=2)[:, :size, :size]
    imgs = np.repeat(templates, per_class, axis=0)
    shift = rng.integers(-2, 3, (len(imgs), 2))
    imgs = np.stack([np.roll(im, tuple(s), axis=(0, 1)) for im, s in zip(imgs, shift)])
    imgs = np.clip(imgs + rng.normal(0, noise, imgs.shape), 0, 1)
    labels = np.repeat(np.arange(num_classes, dtype=np.int32), per_class)
    return ImageDataset((imgs * 255).astype(np.uint8), labels, [f"c{i}" for i in range(num_classes)], name=name)


def load_splits(name: str, data_dir: Optional[str], image_size: Optional[int] = -1,
                synthetic: Optional[dict] = None, split_names: Optional[Dict[str, str]] = None,
                **kwargs) -> Dict[str, ImageDataset]:
    """``{"train", "val", "test"}`` splits of dataset ``name``; ``split_names`` maps
    them to the loader's split names (e.g. ``{"test": "test/Arabic"}`` for glyphs)."""
    if name == "synthetic":
        s = dict(classes=(32, 12, 12), per_class=30, size=28, channels=1)
        s.update(synthetic or {})
        return {split: synthetic_split(n, s["per_class"], s["size"], s["channels"], seed=i + 1,
                                       name=f"synthetic/{split}")
                for i, (split, n) in enumerate(zip(SPLITS, s["classes"]))}
    from omni_jax.data.formats import load_dataset
    if data_dir is None:
        raise OmniJaxError(f"dataset {name} needs --data-dir (omni-jax never downloads datasets)")
    names = dict(zip(SPLITS, SPLITS), **(split_names or {}))
    return {split: load_dataset(name, data_dir, names[split], image_size, **kwargs) for split in SPLITS}


LOO_DOMAINS = ("miniimagenet", "crossdomain_cub", "crossdomain_cars", "crossdomain_places", "crossdomain_plantae")


def _check_known(field: str, name: str) -> None:
    from omni_jax.data.formats import NAMES, is_known
    if name != "synthetic" and not is_known(name):
        raise OmniJaxError(f"config field {field}: unknown dataset {name!r}; expected one of synthetic, "
                           f"{', '.join(NAMES)}, loo:<domain>, or several joined by +")


SELECT_ON = ("train", "test")


class Protocol(NamedTuple):
    """The datasets of a run: ``train`` (their training splits, merged when several), ``tests``
    (each tested on) and ``val`` (whose validation split model selection reads)."""

    train: Tuple[str, ...]
    tests: Tuple[str, ...]
    val: str


def protocol(name: str, test_dataset: str = "", domains: Sequence[str] = LOO_DOMAINS,
             select_on: str = "train") -> Protocol:
    """The :class:`Protocol` of ``data.dataset``, ``data.test_dataset`` (one name or several
    joined by ``,``; default: the training dataset, or the held-out one of ``loo:``) and
    ``data.select_on``; raises naming the field that is wrong."""
    if select_on not in SELECT_ON:
        raise OmniJaxError(f"config field data.select_on must be one of {', '.join(SELECT_ON)}, got {select_on!r}")
    tests = tuple(t.strip() for t in test_dataset.split(","))
    if test_dataset.strip() and not all(tests):
        raise OmniJaxError(f"config field data.test_dataset={test_dataset!r} has an empty name; expected "
                           "dataset names joined by ','")
    tests = tuple(t for t in tests if t)
    twice = sorted({t for t in tests if tests.count(t) > 1})
    if twice:
        raise OmniJaxError(f"config field data.test_dataset={test_dataset!r} lists {', '.join(twice)} twice")
    if name.startswith("loo:"):
        held = name[len("loo:"):]
        if held not in domains:
            raise OmniJaxError(f"config field data.dataset={name!r}: the held-out domain must be one of "
                               f"data.domains {', '.join(domains)}")
        if tests and tests != (held,):
            raise OmniJaxError(f"config field data.test_dataset={test_dataset!r} contradicts data.dataset={name!r}")
        train, tests = tuple(d for d in domains if d != held), (held,)
        if not train:
            raise OmniJaxError(f"config field data.domains {tuple(domains)} leaves no training domain "
                               f"out of {name!r}")
    else:
        train = tuple(n for n in name.split("+") if n)
        if not train:
            raise OmniJaxError(f"config field data.dataset={name!r} names no dataset")
        for field, n in [("data.dataset", t) for t in train] + [("data.test_dataset", t) for t in tests]:
            _check_known(field, n)
        if len(train) > 1 and not tests:
            raise OmniJaxError(f"config field data.dataset={name!r} joins several training datasets: "
                               "set data.test_dataset (--test-dataset), the dataset to test on")
        tests = tests or train[:1]
    if select_on == "test" and len(tests) > 1:
        raise OmniJaxError(f"config field data.select_on='test' selects on the test dataset's validation split, "
                           f"but data.test_dataset names {len(tests)} ({', '.join(tests)}): set "
                           "data.select_on='train' (one training tested on each) or name one test dataset")
    return Protocol(train, tests, train[0] if select_on == "train" else tests[0])


def resolve(name: str, test_dataset: str = "", domains: Sequence[str] = LOO_DOMAINS) -> Tuple[Tuple[str, ...], str]:
    """``(training datasets, test dataset)`` of ``data.dataset`` and ``data.test_dataset`` with one
    test dataset (:func:`protocol` for several)."""
    p = protocol(name, test_dataset, domains)
    if len(p.tests) > 1:
        raise OmniJaxError(f"config field data.test_dataset={test_dataset!r} names several datasets; "
                           "expected one here")
    return p.train, p.tests[0]


def parse_dirs(text: str) -> Dict[str, str]:
    """``"name=dir,name=dir"`` (config field ``data.dirs``) as a dict."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise OmniJaxError(f"config field data.dirs must be 'name=dir,name=dir', got {text!r}")
        out[name.strip()] = path.strip()
    return out


def merge(datasets: Sequence[ImageDataset], names: Sequence[str]) -> ImageDataset:
    """One split of several datasets: images concatenated, every class its own label (``"name/class"``)
    and its dataset remembered (``domain_names``, ``class_domain``)."""
    shapes = {ds.images.shape[1:] for ds in datasets}
    if len(shapes) != 1:
        raise OmniJaxError(f"datasets {', '.join(names)} have different image shapes {sorted(shapes)}; "
                           "set data.image_size")
    offsets = np.cumsum([0] + [ds.num_classes for ds in datasets])[:-1]
    return ImageDataset(np.concatenate([ds.images for ds in datasets]),
                        np.concatenate([ds.labels + o for ds, o in zip(datasets, offsets)]).astype(np.int32),
                        [f"{n}/{c}" for ds, n in zip(datasets, names) for c in ds.class_names],
                        name="+".join(names), domain_names=tuple(names),
                        class_domain=np.repeat(np.arange(len(datasets)), [ds.num_classes for ds in datasets]))


def load_protocol(name: str, data_dir: Optional[str], image_size: Optional[int] = -1, *, test_dataset: str = "",
                  select_on: str = "train", dirs: Optional[Mapping[str, str]] = None,
                  domains: Sequence[str] = LOO_DOMAINS, synthetic: Optional[dict] = None,
                  split_names: Optional[Dict[str, str]] = None, **kwargs) -> Dict[str, ImageDataset]:
    """The splits of a run: :func:`load_splits` of one dataset, or the cross-dataset protocols of the
    module doc: ``train`` from ``name``'s datasets, ``val`` from :func:`protocol`'s ``val`` dataset,
    and ``test`` from the test dataset, or ``test/<name>`` from each of several test datasets."""
    p = protocol(name, test_dataset, domains, select_on)
    if p.train == p.tests == (p.val,):
        return load_splits(p.val, (dirs or {}).get(p.val, data_dir), image_size, synthetic=synthetic,
                           split_names=split_names, **kwargs)
    names = dict(zip(SPLITS, SPLITS), **(split_names or {}))
    where = lambda n: (dirs or {}).get(n, data_dir)

    def split_of(n, split):
        kw = dict(kwargs)
        if n == "synthetic":   # tests: a synthetic set stands in for a dataset on disk
            return load_splits(n, None, image_size, synthetic=synthetic)[split]
        if not n.startswith("glyphs"):
            kw.pop("max_per_class", None)
        from omni_jax.data.formats import load_dataset
        if where(n) is None:
            raise OmniJaxError(f"dataset {n} needs --data-dir or data.dirs (omni-jax never downloads datasets)")
        return load_dataset(n, where(n), names[split], image_size, **kw)

    train = [split_of(n, "train") for n in p.train]
    out = {"train": train[0] if len(train) == 1 else merge(train, p.train), "val": split_of(p.val, "val")}
    if len(p.tests) == 1:
        out["test"] = split_of(p.tests[0], "test")
    else:
        out.update({f"test/{n}": split_of(n, "test") for n in p.tests})
    return out
