"""Data augmentation on the device: random crop, horizontal flip, colour jitter.

Each is switchable per dataset (a flip turns many characters into other or
no characters, so the glyph config turns it off). All of it is vectorised
over the batch inside jit.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    crop_padding: int = 0     # random crop of the original size from the image padded by this much; 0: off
    flip: bool = False        # random left-right flip
    jitter: float = 0.0       # colour jitter strength (brightness, contrast, saturation factors in [1-j, 1+j]); 0: off

    @property
    def enabled(self) -> bool:
        return self.crop_padding > 0 or self.flip or self.jitter > 0


def to_float(x: jnp.ndarray) -> jnp.ndarray:
    """uint8 images to float32 in [0, 1]."""
    return x.astype(jnp.float32) * (1.0 / 255.0)


def augment(key: jax.Array, x: jnp.ndarray, cfg: AugmentConfig) -> jnp.ndarray:
    """Augments uint8 ``x [B, H, W, C]``; returns float32 in [0, 1]."""
    x = to_float(x)
    b, h, w, c = x.shape
    k_crop, k_flip, k_jit = jax.random.split(key, 3)
    if cfg.crop_padding > 0:
        p = cfg.crop_padding
        padded = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="edge")
        off = jax.random.randint(k_crop, (b, 2), 0, 2 * p + 1)
        x = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, c)))(padded, off)
    if cfg.flip:
        flip = jax.random.bernoulli(k_flip, 0.5, (b, 1, 1, 1))
        x = jnp.where(flip, x[:, :, ::-1, :], x)
    if cfg.jitter > 0:
        j = cfg.jitter
        f = jax.random.uniform(k_jit, (3, b, 1, 1, 1), minval=1.0 - j, maxval=1.0 + j)
        x = x * f[0]                                                    # brightness
        mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
        x = (x - mean) * f[1] + mean                                    # contrast
        if c == 3:
            gray = jnp.mean(x, axis=-1, keepdims=True)
            x = (x - gray) * f[2] + gray                                # saturation
        x = jnp.clip(x, 0.0, 1.0)
    return x
