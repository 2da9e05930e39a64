"""The glyph benchmark: real letterforms of many scripts, rendered offline from installed fonts.

A dataset tool, not part of the Omni-Training method. Build it once with
``omni-jax data glyphs --out DIR`` (see ``docs/glyphs.md`` for the font
packages) and read a split back with ``load_dataset("glyphs:<protocol>", DIR,
split)`` or :func:`omni_jax.glyphs.loader.load_glyphs`.

- :mod:`~omni_jax.glyphs.scripts`: the characters rendered, by script, and the script groups;
- :mod:`~omni_jax.glyphs.render`: one font face's characters drawn as 28x28 glyph images;
- :mod:`~omni_jax.glyphs.select`: choosing faces and classes (duplicates, off-script faces,
  family cap, look-alikes, outliers, shape groups), pure numpy;
- :mod:`~omni_jax.glyphs.splits`: the protocols' class lists;
- :mod:`~omni_jax.glyphs.build`: the builder, phase by phase;
- :mod:`~omni_jax.glyphs.archive`: the checksummed ``.npz`` and ``manifest.json`` (write, read, verify);
- :mod:`~omni_jax.glyphs.loader`: one split as an :class:`~omni_jax.data.dataset.ImageDataset`.

Importing any of them has no side effects.
"""
