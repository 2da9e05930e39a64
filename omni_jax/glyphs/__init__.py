"""The glyph benchmark: real letterforms of many scripts, rendered offline from installed fonts.

A dataset tool, not part of the Omni-Training method. Build it once with
``omni-jax data glyphs --out DIR`` (see ``docs/glyphs.md`` for the font
packages) and read a split back with ``load_dataset("glyphs:<protocol>", DIR,
split)`` or :func:`omni_jax.data.formats.glyphs.load_glyphs`. The reading side is a
dataset format like the others and lives in ``omni_jax.data``; this package
is only the builder: it may import the data package, whose formats never
import it.

- :mod:`~omni_jax.glyphs.scripts`: the characters rendered, by script, and the script groups;
- :mod:`~omni_jax.glyphs.render`: one font face's characters drawn as 28x28 glyph images;
- :mod:`~omni_jax.glyphs.select`: choosing faces and classes (duplicates, off-script faces,
  family cap, look-alikes, outliers, shape groups), pure numpy;
- :mod:`~omni_jax.glyphs.splits`: the protocols' class lists;
- :mod:`~omni_jax.glyphs.build`: the builder, phase by phase;
- :mod:`~omni_jax.glyphs.archive`: writing the checksummed ``.npz`` and ``manifest.json``; the ``--out`` check.

Importing any of them has no side effects.
"""
