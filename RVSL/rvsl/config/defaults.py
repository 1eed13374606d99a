"""Every configuration key of RVSL, with its default and meaning.

The defaults are the published method's (ECCV 2022) architecture, loss weights, batch, augmentation and
learning-rate schedule as its YAML writes it, on a plain ResNet-50 with ImageNet pixel statistics.
``configs/FVRID.yml`` is the published run as written (ResNet-50-IBN-a, the reference YAML's pixel
statistics), ``configs/FVRID_reference.yml`` the reference code as it actually ran, and
``configs/demo.yml`` the small CPU setting; ``configs/*.yml`` hold only what differs. Merge order: these
defaults, then ``-c FILE``,
then ``KEY VALUE`` pairs from the command line (see :func:`rvsl.config.load_config`).
"""

from yacs.config import CfgNode as CN

from ..layout import DEFAULT_PATHS

_C = CN()

# ---------------------------------------------------------------------------- #
# Mode: which of the three training stages runs, and the random seed.
# ---------------------------------------------------------------------------- #
_C.MODE = CN()
# STAGE1: supervised on synthetic clear/hazy pairs.
# STAGE2: unsupervised on real clear images (+ the synthetic pairs as an auxiliary task).
# STAGE3: unsupervised on real hazy images (+ the synthetic pairs as an auxiliary task).
_C.MODE.STAGE = "STAGE1"
# Seed of python, numpy, torch and the samplers; runs on CPU repeat exactly for a fixed seed.
_C.MODE.SEED = 0
# Turn on PyTorch's deterministic algorithms (slower on CUDA; CPU runs are deterministic anyway).
_C.MODE.DETERMINISTIC = False

# ---------------------------------------------------------------------------- #
# Model
# ---------------------------------------------------------------------------- #
_C.MODEL = CN()
# "auto" picks CUDA when present, else CPU; or name a device: "cpu", "cuda", "cuda:1".
_C.MODEL.DEVICE = "auto"
# Backbone: resnet18/34/50/101/152, resnet50_ibn_a, resnet101_ibn_a.
_C.MODEL.NAME = "resnet50"
# Stride of the last ResNet stage; the published config uses 2, 1 doubles the last feature map.
_C.MODEL.LAST_STRIDE = 2
# Under torchrun with several GPUs: BatchNorm statistics over the global batch of all processes
# (torch.nn.SyncBatchNorm; CUDA only) instead of each process's share. No effect in a single process.
_C.MODEL.SYNC_BN = False
# A local file to start from: an RVSL checkpoint of the previous stage, or an ImageNet state
# dict of the backbone (torchvision or IBN-Net layout). Empty: random initialisation.
# Nothing is ever downloaded.
_C.MODEL.PRETRAIN_PATH = ""
# Width of the generators' U-Net decoder.
_C.MODEL.GEN_CHANNELS = 64
# How the generators upsample and end: "rvsl" (bilinear resizing, a final sigmoid: images in [0, 1]) or
# "reference" (as the reference code's generators: bilinear x2 with aligned corners, zero-padded to size,
# no final activation; the output is clamped to [0, 1] at test time). A reference-format file is always
# read with "reference" generators; configs/FVRID_reference.yml trains with them.
_C.MODEL.GENERATOR = "rvsl"
# Channels of the first PatchGAN discriminator layer (doubled at each of the next three).
_C.MODEL.DISC_CHANNELS = 64
# Capacity of each discriminator's replay buffer of generated images.
_C.MODEL.POOL_SIZE = 50
# Each discriminator update judges the real and the generated images in one pass over both batches
# instead of two. The same scores and loss (the discriminators normalise per image: no norm on the first
# layer, InstanceNorm after; each kind keeps its own LSGAN mean), fewer and larger kernels.
_C.MODEL.D_BATCHED_PASS = True
# Store the convolutional networks' weights and activations channels-last (NHWC), which tensor-core
# convolutions read fastest on CUDA. Numerically the same model; ignored on the CPU.
_C.MODEL.CHANNELS_LAST = True
# Activation checkpointing (torch.utils.checkpoint): recompute activations in the backward pass instead
# of storing them, trading compute for GPU memory. "none"; "fullres": only the generators' full-resolution
# block; "generators": the generators' blocks; "all": also the ResNet stages. "auto" (training on CUDA):
# the fastest of these whose estimated peak fits the GPU's free memory at start-up (rvsl/engine/memory.py;
# the free memory, the estimates and the choice are logged); "none" on the CPU. BatchNorm running
# statistics of a recomputed block see each batch twice. Peaks measured at the published setting: README.
_C.MODEL.ACTIVATION_CHECKPOINT = "auto"

# ---------------------------------------------------------------------------- #
# Input pipeline. Images are RGB in [0, 1]; the model normalises internally.
# ---------------------------------------------------------------------------- #
_C.INPUT = CN()
# (height, width) at train and test time.
_C.INPUT.SIZE_TRAIN = [384, 384]
_C.INPUT.SIZE_TEST = [384, 384]
# ImageNet statistics used to normalise the encoders' input.
_C.INPUT.PIXEL_MEAN = [0.485, 0.456, 0.406]
_C.INPUT.PIXEL_STD = [0.229, 0.224, 0.225]
# Train-time augmentation, one random draw applied identically to both images of a synthetic pair
# (and to each real image), in this order (the reference recipe):
# Probability of a horizontal flip.
_C.INPUT.FLIP_PROB = 0.5
# Resize each axis by its own factor drawn from U(low, high), then crop the centre back to
# SIZE_TRAIN; both at least 1 ([1.0, 1.0] turns it off).
_C.INPUT.RESIZE_RANGE = [1.0, 1.2]
# Zero padding before a random crop back to SIZE_TRAIN; 0 (the reference recipe) turns it off.
_C.INPUT.PADDING = 0
# Random erasing (Zhong et al., AAAI 2020): probability (0 turns it off); erased area as a
# fraction of the image, U(low, high); aspect ratio h / w drawn from U(ERASE_ASPECT, 1 / ERASE_ASPECT);
# RGB fill in [0, 1].
_C.INPUT.ERASE_PROB = 0.5
_C.INPUT.ERASE_AREA = [0.02, 0.4]
_C.INPUT.ERASE_ASPECT = 0.3
_C.INPUT.ERASE_FILL = [0.4914, 0.4822, 0.4465]
# Photometric changes (off by default, as in the reference recipe), applied before erasing with the same draw
# for both twins of a pair: colour jitter with probability JITTER_PROB, each of brightness, contrast,
# saturation and a per-channel colour cast scaled by U(1 - s, 1 + s) for its strength s in JITTER;
# a Gaussian blur with probability BLUR_PROB of U(low, high) x the image height; Gaussian noise of
# standard deviation U(0, NOISE_STD) (0 turns it off).
_C.INPUT.JITTER_PROB = 0.0
_C.INPUT.JITTER = [0.0, 0.0, 0.0, 0.0]
_C.INPUT.BLUR_PROB = 0.0
_C.INPUT.BLUR_SIGMA = [0.0, 0.0]
_C.INPUT.NOISE_STD = 0.0

# ---------------------------------------------------------------------------- #
# Datasets: the FVRID layout (one key per folder; relative paths are under DATA_PATH).
# ---------------------------------------------------------------------------- #
_C.DATASETS = CN()
_C.DATASETS.DATA_PATH = "Datasets"
# One key per folder of the layout, SYN_TRAIN_CLEAR_PATH ... REAL_GALLERY_FOGGY_PATH, generated from the
# table in rvsl/layout.py: synthetic train/query/gallery in clear and hazy twins (SYN_*), real clear
# (REAL_*_CLEAR_PATH) and real hazy (REAL_*_FOGGY_PATH) train/query/gallery. The real TRAIN folders are
# unlabelled (names never parsed); the real query/gallery folders may be absent in stages 2/3. The optional
# labelled real hazy dev split (REAL_DEV_QUERY_FOGGY_PATH, REAL_DEV_GALLERY_FOGGY_PATH) is read only by
# evaluation (TEST.DATA REAL_FOGGY_DEV), never by training.
for _key, _rel in DEFAULT_PATHS.items():
    _C.DATASETS[_key] = _rel
del _key, _rel

# ---------------------------------------------------------------------------- #
# Data loading
# ---------------------------------------------------------------------------- #
_C.DATALOADER = CN()
# Worker processes per loader (0 loads in the main process); they stay alive between epochs and each
# keeps PREFETCH batches ready. Training batches travel as uint8 and are scaled to [0, 1] on the device.
_C.DATALOADER.NUM_WORKERS = 4
_C.DATALOADER.PREFETCH = 4
# Identities (P) and instances per identity (K) of the synthetic batch: P*K pairs.
_C.DATALOADER.NUM_IDENTITIES = 6
_C.DATALOADER.NUM_INSTANCES = 6
# Real (unlabelled) images per batch in stages 2 and 3; published: 3K = 18.
_C.DATALOADER.REAL_BATCH_SIZE = 18

# ---------------------------------------------------------------------------- #
# Label-free validation data held out of the training folders, so a stage's best.pth can be chosen
# without any real label: a labelled SYNTHETIC split, and unlabelled real images.
# ---------------------------------------------------------------------------- #
_C.VAL = CN()
# Synthetic training identities held out (removed from training and from the classifier's classes):
# the first SYN_IDENTITIES of a permutation of the sorted identity ids drawn from MODE.SEED. Per held-out
# identity and camera the first image (sorted file path) is a query, every other image is gallery;
# the hazy images are evaluated, their clear twins feed the image-quality figures.
# 0 (default) holds nothing out: the published recipe trains on every synthetic identity.
_C.VAL.SYN_IDENTITIES = 0
# Real training images of stages 2/3 held out (a seeded random choice, names never parsed) for the
# label-free proxies of SOLVER.BEST_METRIC "real_proxy/..."; 0 holds nothing out.
_C.VAL.REAL_IMAGES = 0

# ---------------------------------------------------------------------------- #
# Solver
# ---------------------------------------------------------------------------- #
_C.SOLVER = CN()
_C.SOLVER.MAX_EPOCHS = 200
# Adam for encoders, ReID body and generators.
_C.SOLVER.BASE_LR = 1e-4
_C.SOLVER.WEIGHT_DECAY = 5e-4
# Linear warm-up from BASE_LR * WARMUP_FACTOR to BASE_LR over WARMUP_LENGTH steps of WARMUP_UNIT:
# "iteration" (the schedule as the reference config is written) or "epoch" (as the reference ran:
# its scheduler stepped once per epoch, so its 200-step warm-up spanned all 200 epochs and the rate
# never exceeded about 1.04e-5; configs/FVRID_reference.yml). 0 disables the warm-up.
_C.SOLVER.WARMUP_FACTOR = 0.01
_C.SOLVER.WARMUP_LENGTH = 200
_C.SOLVER.WARMUP_UNIT = "iteration"
# Steps by which the warm-up and the decay are advanced before the first epoch: 0, or 1 as the reference
# ran (its trainers stepped the scheduler once at start-up, so its 0-based epoch e ran at the schedule's
# step e + 1: the peak in epoch 18, the first decay in epoch 19; configs/FVRID_reference.yml).
_C.SOLVER.SCHEDULE_OFFSET = 0
# Multi-step decay: multiply the rate by GAMMA at each of these epochs (the reference's milestones:
# 20, 30, then every 15 epochs up to 255).
_C.SOLVER.STEPS = [20, 30] + list(range(45, 256, 15))
_C.SOLVER.GAMMA = 0.6
# Adam for the discriminators; constant for the first half of training, then linear to zero.
_C.SOLVER.DISC_LR = 2e-4
_C.SOLVER.DISC_BETAS = [0.5, 0.999]
# Mixed precision on CUDA: "auto" (bf16 where the GPU supports it, else fp16, e.g. on a V100; the
# choice is logged at start-up), "bf16", "fp16" (with a gradient scaler) or "off". Off on the CPU.
_C.SOLVER.AMP = "auto"
# Accumulate the gradients of this many loader batches (each P x K pairs, REAL_BATCH_SIZE real images)
# before each optimiser step: the same effective batch on a smaller GPU with NUM_IDENTITIES / ACCUM_STEPS.
_C.SOLVER.ACCUM_STEPS = 1
# Adam's fused CUDA kernel (one launch for all parameters); the CPU uses the plain loop either way.
_C.SOLVER.FUSED_ADAM = True
# torch.compile the networks' forward passes (the first iterations are slow while it compiles).
_C.SOLVER.COMPILE = False
# Run validation every EVAL_PERIOD epochs (and after the last); 0 validates only at the end.
_C.SOLVER.EVAL_PERIOD = 10
# Log the running losses every LOG_PERIOD iterations.
_C.SOLVER.LOG_PERIOD = 20
# Stop after this many consecutive non-finite losses of one update, model or discriminators (each
# such update is skipped). Checking costs one host-device synchronisation per update (measured in
# benchmarks/train_speed.py); 0 turns the check off.
_C.SOLVER.MAX_NONFINITE = 5
# Which validation figure selects best.pth (higher is better); none of the label-free choices reads a
# real label:
#   "syn_val/<branch>/<metric>"  the synthetic validation split held out of the training identities
#                                (VAL.SYN_IDENTITIES); branch clear/hazy/fused, metric mAP/rank1/mINP
#   "real_proxy/<proxy>"         label-free proxies on held-out unlabelled real images of stages 2-3
#                                (VAL.REAL_IMAGES): cycle_psnr, agreement or knn_overlap (rvsl/evaluation/proxies.py)
#   "last"                       the last epoch (default: on the demo data no candidate was shown to
#                                track the real test mAP better; README, "Choosing a checkpoint")
#   "test_labels/<branch>/<metric>"  CHOSEN ON THE STAGE'S LABELLED TEST SET: numbers reported on that
#                                set after such a choice are optimistic (the reference code's choice).
_C.SOLVER.BEST_METRIC = "last"

# ---------------------------------------------------------------------------- #
# Loss weights (the paper's, per stage)
# ---------------------------------------------------------------------------- #
_C.LOSS = CN()
# Label smoothing of the identity cross-entropy (0 disables it; the reference ran without it).
_C.LOSS.LABEL_SMOOTH = 0.0
# Margin of the batch-hard triplet loss.
_C.LOSS.TRIPLET_MARGIN = 0.3
# Stage 1 (and the synthetic auxiliary task of stages 2/3, scaled by the AUX_* factors). SYN_ADV
# weighs the mean of the two generator terms, as the reference did.
_C.LOSS.SYN_REID = 1.0
_C.LOSS.SYN_TRANSLATION = 0.5
_C.LOSS.SYN_EC = 0.5
_C.LOSS.SYN_ADV = 0.5
# Auxiliary synthetic task in stages 2 and 3.
_C.LOSS.AUX_REID = 10.0
_C.LOSS.AUX_EC = 1.0
_C.LOSS.AUX_TRANSLATION = 100.0
# Real branch of stages 2 and 3.
_C.LOSS.REAL_EC = 1.0
_C.LOSS.REAL_CYCLE = 100.0
_C.LOSS.REAL_ADV = 0.5
_C.LOSS.REAL_PRIOR = 0.01
# Stage 2 priors on the rendered hazy image: MIDC + CR, each times these.
_C.LOSS.MIDC = 1.0
_C.LOSS.CR_STAGE2 = 1.0
# Stage 3 priors on the dehazed image: 0.5 DCP + 2 TV + 0.05 CR.
_C.LOSS.DCP = 0.5
_C.LOSS.TV = 2.0
_C.LOSS.CR_STAGE3 = 0.05
# Window of the dark channel prior.
_C.LOSS.DCP_PATCH = 35

# ---------------------------------------------------------------------------- #
# Test / inference
# ---------------------------------------------------------------------------- #
_C.TEST = CN()
# Which test set: SYN, REAL_CLEAR or REAL_FOGGY.
_C.TEST.DATA = "SYN"
# Checkpoint to evaluate (inference.py).
_C.TEST.WEIGHT = ""
_C.TEST.IMS_PER_BATCH = 64
# "euclidean" or "cosine".
_C.TEST.DISTANCE = "euclidean"
# k-reciprocal re-ranking (Zhong et al., CVPR 2017).
_C.TEST.RERANK = False
_C.TEST.RERANK_K1 = 20
_C.TEST.RERANK_K2 = 6
_C.TEST.RERANK_LAMBDA = 0.3
# Write rank-list pictures and input / dehazed / re-hazed triplets.
_C.TEST.VIS = False
_C.TEST.VIS_NUM = 10

# Where logs, config.yaml, checkpoints and metrics go.
_C.OUTPUT_DIR = "output"
