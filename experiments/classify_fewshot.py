"""Few-shot classification, paper §6.1 (Tables 2, 3, 6, 7; Figure 12).

    omni-jax classify --dataset glyphs --method omni_proto --backbone conv4 --data-dir DIR
    omni-jax classify --dataset synthetic --method protonet --quick
    omni-jax classify ... --config.loss.distill_pre=False --config.loss.distill_meta=False   # a Table 6 row
    omni-jax classify ... --config.model.num_plain=2        # keep the first 2 blocks plain (Figure 12)
    omni-jax classify ... --method protonet --config.model.star=True   # ProtoNet* (Table 7)

Fields left at ``"auto"`` / -1 take the dataset's preset (``PRESETS`` below):
photos get random crop, flip and colour jitter at 84x84; glyphs get a small
random crop only (a flip makes another character) at 28x28.
"""
import ml_collections

# Per-dataset defaults for the fields left at "auto"/-1 (keyed by the name before ':').
PRESETS = {
    "glyphs": dict(image_size=0, crop_padding=2, flip=False, jitter=0.0, n_query=15,
                   eval_settings=((5, 1), (5, 5), (20, 1), (20, 5))),
    "synthetic": dict(image_size=0, crop_padding=2, flip=False, jitter=0.0, n_query=16,
                      eval_settings=((5, 1), (5, 5))),
    "default": dict(image_size=84, crop_padding=8, flip=True, jitter=0.4, n_query=16,
                    eval_settings=((5, 1), (5, 5))),
}


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.data = d = ml_collections.ConfigDict()
    d.image_size = -1               # -1: preset; 0: the stored size
    d.train_split = "train"         # split names passed to the loader; glyphs accept e.g. "test/Arabic+Hebrew+Khmer"
    d.val_split = "val"
    d.test_split = "test"
    d.max_per_class = 0             # glyphs: keep at most this many faces per class (0: all)
    d.on_error = "skip"             # undecodable images: "skip" (counted in the log) or "raise"
    d.crop_padding = -1             # augmentation (-1/"auto": preset)
    d.flip = "auto"
    d.jitter = -1.0
    d.synthetic_classes = (32, 12, 12)   # only for --dataset synthetic
    d.synthetic_per_class = 30
    d.synthetic_size = 28

    c.model = m = ml_collections.ConfigDict()
    m.width = 64                    # conv4 channels
    m.depth = 4                     # conv4 blocks (4 is Conv-4; fewer only for tests)
    m.num_plain = 0                 # keep the first n blocks plain (Figure 12)
    m.star = False                  # plain backbone with the Omni parameter count (ResNet-18*, Table 7)
    m.pool = "reshape"              # 2x2 max-pool: "reshape" (fast on CPU) or "window"
    m.drop_rate = 0.1               # ResNet-12 DropBlock

    c.loss = o = ml_collections.ConfigDict()   # Omni-Loss terms (Table 6); used by omni_proto / omni_maml
    o.joint_pre = True
    o.joint_meta = True
    o.pre = True
    o.meta = True
    o.distill_pre = True
    o.distill_meta = True
    o.lam = 3.0
    o.ema_decay = 0.99
    o.distill_on = "probs"          # R_pre/R_meta compare softmax outputs ("probs") or raw logits ("logits")

    c.train = t = ml_collections.ConfigDict()
    t.num_steps = 20000
    t.batch_size = 64               # the standard mini-batch (pre-training)
    t.n_way = 5                     # the training episode (meta-training)
    t.k_shot = 5
    t.n_query = -1                  # -1: preset (16; 15 for glyphs, whose classes have >= 20 faces)
    t.meta_batch = 1
    t.lr = 1e-3                     # Adam
    t.maml_inner_lr = 0.01
    t.maml_steps = 1
    t.maml_first_order = True
    t.chunk_size = 100
    t.ckpt_every = 1000
    t.val_every = 1000              # model selection on the validation split
    t.val_tasks = 200

    c.eval = e = ml_collections.ConfigDict()
    e.num_tasks = 600
    e.n_query = -1                  # -1: as in training
    e.settings = ()                 # ((n_way, k_shot), ...); empty: preset
    e.heads = ()                    # any of joint/pre/meta/ensemble; empty: the method's default head
    e.seed = 1234                   # test tasks are the same for every method
    e.finetune_epochs = 100         # Baseline's new linear head (Chen et al.)
    e.finetune_batch = 4
    e.finetune_lr = 0.01
    e.finetune_momentum = 0.9
    e.finetune_weight_decay = 1e-3
    e.maml_steps = 10
    e.maml_lr = 0.01
    e.images_per_call = 2048
    return c


def get_quick_config() -> ml_collections.ConfigDict:
    """``--quick``: a smoke run of the whole pipeline in a minute or two on 2 CPU cores."""
    c = get_config()
    c.train.num_steps = 40
    c.train.chunk_size = 10
    c.train.ckpt_every = 20
    c.train.val_every = 20
    c.train.val_tasks = 10
    c.train.batch_size = 16
    c.eval.num_tasks = 20
    c.eval.finetune_epochs = 10
    c.eval.maml_steps = 3
    return c
