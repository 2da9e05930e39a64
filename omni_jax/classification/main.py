"""``omni-jax classify``: the command line of :func:`omni_jax.classification.train_and_evaluate`."""
from __future__ import annotations

from omni_jax import cli

EXAMPLES = """\
  omni-jax classify --quick                                         # synthetic images, no files (a smoke run)
  omni-jax classify --dataset glyphs:cross_task --data-dir DIR --method omni_proto,protonet,baseline
  omni-jax classify --dataset miniimagenet --data-dir DIR --method protonet --backbone resnet12
  omni-jax classify ... --config.omni.distill_pre=False --config.omni.distill_meta=False   # a Table 6 row
  omni-jax classify --config classify_crossdomain --data-dir CD --config.data.dirs=miniimagenet=M   # Table 4
  omni-jax classify --config classify_multidomain --dataset loo:crossdomain_cars --data-dir CD \
      --config.data.dirs=miniimagenet=M                                               # Table 5, one column
"""


def config_for(dataset: str) -> str:
    """The packaged config of a dataset: classify_glyphs, classify_synthetic, or classify (photos)."""
    family = dataset.split(":")[0]
    return {"glyphs": "classify_glyphs", "synthetic": "classify_synthetic"}.get(family, "classify")


def add_arguments(parser) -> None:
    cli.add_common(parser, config="classify_<dataset family>", workdir="runs/classify/<dataset>_<backbone>",
                   examples=EXAMPLES)
    parser.add_argument("--dataset", default=None,
                        help="data.dataset: glyphs[:cross_task|cross_domain|loo_<group>], miniimagenet, cub, "
                             "mini2cub, crossdomain_<cub|cars|places|plantae>, tfds:<builder>, or synthetic (no "
                             "files); picks the config classify_glyphs, classify_synthetic or classify "
                             "(default: the config's, synthetic without --config)")
    parser.add_argument("--test-dataset", default=None,
                        help="data.test_dataset: test on this dataset, or on each of several joined by ',' "
                             "(Table 4: --dataset miniimagenet --test-dataset crossdomain_cub,crossdomain_cars,"
                             "crossdomain_places,crossdomain_plantae, one training); model selection reads the "
                             "training dataset's validation split (data.select_on); --dataset loo:<domain> leaves "
                             "one of data.domains out (Table 5); with several datasets set data.dirs='name=dir,...'")
    parser.add_argument("--method", default=None,
                        help="train.methods, comma-separated: omni_<algorithm> (omni_proto, omni_maml, "
                             "omni_matching, omni_relation, omni_gnn), an algorithm alone (protonet, maml, "
                             "matchingnet, relationnet, gnn, baseline, baseline_pp), ensemble, joint, or a "
                             "method of an algorithm registered by your --config file "
                             "(omni_jax.classification.register_meta_algorithm)")
    parser.add_argument("--backbone", default=None, help="model.backbone: conv4, resnet10, resnet12, resnet18, or "
                                                         "one registered by your --config file "
                                                         "(omni_jax.classification.register_backbone)")
    parser.add_argument("--data-dir", default=None, help="data.dir, the dataset's folder (never downloaded)")


def run(args, overrides) -> int:
    from omni_jax.classification import train_and_evaluate
    cfg = cli.load_config(args, overrides, config_for(args.dataset or "synthetic"))
    if args.dataset is not None:
        cfg.data.dataset = args.dataset
    if args.test_dataset is not None:
        cfg.data.test_dataset = args.test_dataset
    if args.method is not None:
        cfg.train.methods = tuple(m.strip() for m in args.method.split(",") if m.strip())
    if args.backbone is not None:
        cfg.model.backbone = args.backbone
    if args.data_dir is not None:
        cfg.data.dir = args.data_dir
    workdir = cli.default_workdir(args, f"runs/classify/{cfg.data.dataset.replace(':', '_')}_{cfg.model.backbone}")
    train_and_evaluate(cfg, workdir, **cli.run_options(args))
    return 0
