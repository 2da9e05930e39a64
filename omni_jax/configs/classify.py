"""Few-shot classification of photos, paper §6.1 (Tables 2, 3, 6, 7; Figure 12): miniImageNet, CUB,
mini2cub, the cross-domain sets and TFDS builders, at 84x84 with random crop, flip and colour jitter.

    omni-jax classify --dataset miniimagenet --data-dir DIR --method omni_proto --backbone resnet12
    omni-jax classify ... --method omni_proto,protonet,baseline          # several methods, one table
    omni-jax classify ... --config.omni.distill_pre=False --config.omni.distill_meta=False   # a Table 6 row
    omni-jax classify ... --config.model.num_plain=2          # keep the first 2 blocks plain (Figure 12)
    omni-jax classify ... --method protonet --config.model.star=True   # ProtoNet* (Table 7)

``classify_glyphs`` and ``classify_synthetic`` derive from this file, and so do the configs of the
paper's protocols at the references' image size (Conv-4 takes 84x84, the ResNets 224x224):
``classify_miniimagenet``, ``classify_cub``, ``classify_mini2cub`` (Tables 2, 3; ResNet-18),
``classify_crossdomain`` and ``classify_multidomain`` (Tables 4, 5; ResNet-10).
"""
import ml_collections

from omni_jax.config import omni_group


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.data = d = ml_collections.ConfigDict()
    d.dataset = "miniimagenet"      # see omni_jax.data.formats, "a+b" (merged training sets), loo:<domain>; --dataset
    d.dir = ""                      # the dataset's folder (never downloaded); --data-dir
    d.test_dataset = ""             # test on this dataset instead, or on each of several joined by "," (one
                                    #   training; Table 4); --test-dataset
    d.select_on = "train"           # model selection on the validation split of the training dataset ("train"; the
                                    #   first one when several, mini-ImageNet for loo:) as Tseng et al. do in both
                                    #   settings (their miniImagenet/val.json), or of the test dataset ("test", the
                                    #   unseen domain; omni-jax before issue 27)
    d.dirs = ""                     # "name=dir,name=dir": folders of the datasets of a cross-dataset run
    d.domains = ("miniimagenet", "crossdomain_cub", "crossdomain_cars", "crossdomain_places",
                 "crossdomain_plantae")  # --dataset loo:<one of these>: train on the others (Table 5)
    d.domain_episodes = "balanced"  # several training datasets (loo:, a+b): "balanced", each episode's classes from
                                    #   one dataset, drawn uniformly (Tseng et al.'s MultiEpisodicBatchSampler); or
                                    #   "pooled", from all classes together (weighted by class count; before issue
                                    #   27). Standard mini-batches are uniform over all their images either way
    d.image_size = 84               # images are resized to this; 0: the stored size
    d.train_split = "train"         # split names passed to the loader; glyphs accept e.g. "test/Arabic+Hebrew+Khmer"
    d.val_split = "val"
    d.test_split = "test"
    d.max_per_class = 0             # glyphs: keep at most this many faces per class (0: all)
    d.on_error = "skip"             # undecodable images: "skip" (counted in the log) or "raise"
    d.crop_padding = 8              # augmentation: random crop after zero padding by this many pixels
    d.flip = True                   # random horizontal flip
    d.jitter = 0.4                  # colour jitter strength

    c.model = m = ml_collections.ConfigDict()
    m.backbone = "conv4"            # conv4, resnet10, resnet12, resnet18; --backbone
    m.width = 64                    # conv4 channels
    m.depth = 4                     # conv4 blocks (4 is Conv-4; fewer only for tests)
    m.num_plain = 0                 # keep the first n blocks plain (Figure 12)
    m.star = False                  # plain backbone with the Omni parameter count (ResNet-18*, Table 7)
    m.pool = "reshape"              # 2x2 max-pool: "reshape" (fast on CPU) or "window"
    m.conv_init = "torch"           # every backbone convolution: "torch" (PyTorch's default kaiming_uniform(a=√5),
                                    # std 1/√(3·fan_in)), "he_normal" (omni-jax before issue 12), "lecun_normal"
    m.drop_rate = 0.1               # ResNet-12 DropBlock
    m.fce = True                    # MatchingNet's full context embeddings (Vinyals et al.; Chen et al.)
    m.relation_hidden = 8           # RelationNet's relation module: hidden units of its first FC layer
    m.gnn_embed_dim = 128           # GNN: node embedding (Dense + BatchNorm of the backbone's features)
    m.gnn_features = 96             # GNN: nf (each of the 2 dense graph layers adds nf/2 features)
    m.gnn_graph = "class_set"       # GNN graphs: "class_set" (one query of each class per graph, Tseng et al.'s
                                    # code: the test graphs use the query labels' grouping, docs/departures.md) or
                                    # "query" (one query per graph, Garcia & Bruna)
    m.head_bn = "batch"             # BatchNorm of RelationNet's relation module and of the GNN: "batch" (each
                                    # episode's own statistics in training and at test, no running averages: the
                                    # reference codes, Tseng et al.'s track_running_stats=False and Chen et al.'s
                                    # relation module left in training mode at test, one episode a batch) or
                                    # "running" (the batch's statistics in training, running averages at test:
                                    # Garcia & Bruna's GNN code; omni-jax before issue 27)

    c.omni = omni_group(lam=3.0, ema_decay=0.99)   # Omni-Loss terms (Table 6) of the omni_* methods

    c.train = t = ml_collections.ConfigDict()
    t.methods = ("omni_proto",)     # see omni_jax.classification.methods.METHODS; --method
    t.pretrain = "linear"           # the pre-training algorithm (and test-time new head): linear (Baseline), cosine (Baseline++)
    t.num_steps = 20000
    t.batch_size = 64               # the standard mini-batch (pre-training)
    t.n_way = 5                     # the training episode (meta-training)
    t.k_shot = 5
    t.n_query = 16
    t.meta_batch = 1                # episodes per step (every meta algorithm but MAML)
    t.lr = 1e-3                     # Adam
    t.maml_inner_lr = 0.01          # MAML as Chen et al.: 5 inner steps (training and test), 4 tasks per step
    t.maml_steps = 5
    t.maml_tasks = 4
    t.maml_first_order = False      # True: first-order MAML (Chen et al.'s maml_approx)
    t.maml_task_chunk = 1           # MAML's tasks adapted at once (0: all in one vmap); 1, one after another, is
                                    # fastest on CPU (per-task kernels make a vmap a grouped convolution)
    t.matching_scale = 100.0        # MatchingNet: softmax over scale * relu(cosine) (Chen et al.)
    t.distill_on = "probs"          # R_pre/R_meta compare softmax outputs ("probs") or raw logits ("logits")
    t.proto_distance = "euclidean"  # ProtoNet's distance (training, R_meta, test-time probabilities): "euclidean"
                                    # (as torch.cdist) or "squared" (Snell et al.); docs/classification_accuracy.md
    t.chunk_size = 100
    t.ckpt_every = 1000
    t.val_every = 1000              # model selection on val_tasks episodes of the validation split, in the
    t.val_tasks = 200               #   training setting (train.n_way, k_shot, n_query, MAML's inner loop)

    c.eval = e = ml_collections.ConfigDict()
    e.num_tasks = 600
    e.n_query = 16
    e.settings = ((5, 1), (5, 5))   # (n_way, k_shot) test settings
    e.heads = ("default",)          # any of joint/pre/meta/ensemble; "default": each method's own head
    e.seed = 1234                   # the test tasks' seed (the same tasks for every method and training seed)
    e.finetune_epochs = 100         # the pre-training algorithm's new head (Chen et al.): epochs over the support set
    e.finetune_batch = 4
    e.finetune_lr = 0.01            # torch.optim.SGD(lr, momentum, dampening, weight_decay) as Chen et al.
    e.finetune_momentum = 0.9
    e.finetune_dampening = 0.9
    e.finetune_weight_decay = 1e-3
    e.finetune_backbone_steps = 0   # > 0: then fine-tune the backbone with the head (paper §4.3) this many steps
    e.finetune_backbone_lr = 1e-3
    e.maml_steps = 5
    e.maml_lr = 0.01
    e.images_per_call = 2048
    e.maml_tasks_per_call = 1       # MAML heads: tasks per jitted call (1 is fastest on a CPU; 0: images_per_call
                                    #   decides, for accelerators)
    return c
