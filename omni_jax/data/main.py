"""Build and inspect datasets: ``omni-jax data glyphs --out DIR`` renders the offline glyph benchmark.

    omni-jax data glyphs --out DIR [--font-dir DIR ...] [--scripts Latin,Greek] [--workers N]
    omni-jax data inspect --dataset NAME --data-dir DIR [--split train]

``glyphs`` renders the installed fonts (docs/glyphs.md lists the Debian
packages) into ``DIR/glyphs-v1.npz`` and ``DIR/manifest.json`` with
:func:`omni_jax.glyphs.build.build`, which first checks that ``DIR`` can be
written. ``inspect``
loads one split with the library's loader and prints its size, so a data
directory can be checked before a long run.
"""
from __future__ import annotations

import argparse
import logging
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="WHAT")
    g = sub.add_parser("glyphs", help="render the glyph benchmark from the installed fonts")
    g.add_argument("--out", required=True, help="output folder (glyphs-v1.npz and manifest.json)")
    g.add_argument("--font-dir", action="append", default=None,
                   help="folder to search for fonts, repeatable (default: /usr/share/fonts, /usr/local/share/fonts)")
    g.add_argument("--scripts", default=None, help="comma-separated scripts to render (default: all)")
    g.add_argument("--workers", type=int, default=None, help="rendering processes (default: up to 2)")
    g.add_argument("--min-faces", type=int, default=20, help="faces a class needs (default 20)")
    g.add_argument("--max-per-family", type=int, default=6, help="faces kept per font family and script (default 6)")
    g.add_argument("--max-classes-per-script", type=int, default=100, help="(default 100)")
    g.add_argument("--seed", type=int, default=0, help="seed of the splits (default 0)")
    i = sub.add_parser("inspect", help="load one split of a dataset and print its size")
    i.add_argument("--dataset", required=True, help="e.g. miniimagenet, cub, mini2cub, crossdomain_cars, "
                                                    "tfds:cars196, glyphs, glyphs:cross_domain")
    i.add_argument("--data-dir", required=True)
    i.add_argument("--split", default="train")
    i.add_argument("--image-size", type=int, default=-1, help="default: the dataset's usual size")
    i.add_argument("--on-error", choices=("skip", "raise"), default="skip",
                   help="undecodable images: skip and count them, or stop (default skip)")


def run(args, overrides) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.data_command == "glyphs":
        from omni_jax.glyphs.build import build

        scripts = [s.strip() for s in args.scripts.split(",") if s.strip()] if args.scripts else None
        manifest = build(args.out, args.font_dir, scripts=scripts, workers=args.workers, min_faces=args.min_faces,
                         max_per_family=args.max_per_family, max_classes_per_script=args.max_classes_per_script,
                         seed=args.seed, progress=lambda m: print(m, file=sys.stderr, flush=True))
        print(f"{manifest['num_classes']} classes, {manifest['num_scripts']} scripts, {manifest['num_images']} glyphs, "
              f"faces per class {manifest['faces_per_class']}")
        for s, info in manifest["scripts"].items():
            print(f"  {s:20s} {info['group']:17s} {info['side']:10s} {info['classes']:4d} classes")
        for p, parts in manifest["splits"].items():
            print(f"  split {p:26s} " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()))
        return 0
    from omni_jax.data.formats import load_dataset

    ds = load_dataset(args.dataset, args.data_dir, args.split, args.image_size, on_error=args.on_error)
    counts = ds.class_counts()
    print(f"{ds.name}: {len(ds.labels)} images of shape {ds.images.shape[1:]}, {ds.num_classes} classes, "
          f"{counts.min()}-{counts.max()} images per class (from {ds.source})")
    return 0
