"""Named PRNG streams: every random draw of a run comes from one key per purpose, in one table.

A stream's key is ``fold_in(PRNGKey(seed), STREAMS[name])``, then folded with
each element of ``path``: integers as they are, strings (method names) by
their CRC-32, so a method's stream depends on its name and not on its
position in the config's method list (reordering ``train.methods`` changes
nothing). Adding a stream to the table never changes another stream.
"""
from __future__ import annotations

import zlib
from typing import Union

import jax

STREAMS = {
    "init": 1,         # a method's parameters and its training key: path (method,)
    "dataset": 2,      # a fixed training set (sinusoid's 30,000 tasks)
    "validation": 3,   # validation tasks during training (model selection): under the training seed
    "test": 4,         # the test tasks, the same for every method: under eval.seed; path (setting, ...)
    "figure": 5,       # example tasks drawn for a figure: under eval.seed
}


def _fold(key, item: Union[int, str]):
    if isinstance(item, str):
        item = zlib.crc32(item.encode())
    return jax.random.fold_in(key, item)


def prng_stream(seed: int, name: str, *path: Union[int, str]) -> jax.Array:
    """The raw ``uint32[2]`` key of stream ``name`` (see :data:`STREAMS`) under ``seed``."""
    if name not in STREAMS:
        raise KeyError(f"unknown PRNG stream {name!r}; add it to omni_jax.training.rng.STREAMS")
    key = jax.random.fold_in(jax.random.PRNGKey(seed), STREAMS[name])
    for item in path:
        key = _fold(key, item)
    return key
