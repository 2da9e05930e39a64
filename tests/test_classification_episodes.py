"""The on-device episode sampler, mini-batch stream and augmentation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omni_jax.classification.augment import AugmentConfig, augment
from omni_jax.classification.datasets import synthetic_split
from omni_jax.classification.episodes import sample_batch, sample_episode, to_device
from omni_jax.data.dataset import ImageDataset


def _dataset():
    # 8 classes; class c has 6 + c images; each image's pixel value encodes (class, index).
    counts = [6 + c for c in range(8)]
    labels = np.concatenate([np.full(n, c, np.int32) for c, n in enumerate(counts)])
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labels))
    labels = labels[order]
    images = np.zeros((len(labels), 4, 4, 1), np.uint8)
    images[:, 0, 0, 0] = labels
    images[:, 0, 1, 0] = np.arange(len(labels))
    return ImageDataset(images, labels, [f"c{i}" for i in range(8)], name="toy")


def test_episode_has_distinct_classes_and_images_with_matching_labels():
    ds = _dataset()
    split = to_device(ds)
    fn = jax.jit(lambda k: sample_episode(k, split, 5, 2, 6))  # needs 8 images: classes 2..7 only
    seen = set()
    for i in range(20):
        ep = jax.device_get(fn(jax.random.PRNGKey(i)))
        classes = ep["classes"]
        assert len(set(classes.tolist())) == 5 and classes.min() >= 2
        seen |= set(classes.tolist())
        x = np.concatenate([ep["support"]["x"].reshape(5, 2, 4, 4, 1), ep["query"]["x"].reshape(5, 6, 4, 4, 1)], 1)
        assert (x[:, :, 0, 0, 0] == classes[:, None]).all()          # every image of its class
        for row in x[:, :, 0, 1, 0]:
            assert len(set(row.tolist())) == 8                           # K+Q distinct images
        assert (ep["support"]["y"] == np.repeat(np.arange(5), 2)).all()
        assert (ep["query"]["y"] == np.repeat(np.arange(5), 6)).all()
    assert seen == set(range(2, 8))


def test_batch_labels_match_images_and_cover_the_classes():
    split = to_device(_dataset())
    b = jax.device_get(jax.jit(lambda k: sample_batch(k, split, 256))(jax.random.PRNGKey(0)))
    assert (b["x"][:, 0, 0, 0] == b["y"]).all() and set(b["y"].tolist()) == set(range(8))


def test_augmentation_switches():
    x = jnp.asarray(synthetic_split(2, 4, 12, 3).images)
    k = jax.random.PRNGKey(0)
    off = augment(k, x, AugmentConfig())
    np.testing.assert_allclose(off, x / 255.0, rtol=1e-6)
    flipped = augment(k, x, AugmentConfig(flip=True))
    same = np.all(np.isclose(flipped, off), axis=(1, 2, 3))
    mirrored = np.all(np.isclose(flipped, off[:, :, ::-1]), axis=(1, 2, 3))
    assert (same | mirrored).all() and same.any() and mirrored.any()
    crop = augment(k, x, AugmentConfig(crop_padding=2))
    assert crop.shape == x.shape and not np.allclose(crop, off)
    jit = augment(k, x, AugmentConfig(jitter=0.4))
    assert float(jit.min()) >= 0 and float(jit.max()) <= 1 and not np.allclose(jit, off)
