"""Multi-process training under torchrun: sharded samplers and evaluation, and two CPU processes (gloo) that
train like one process with the global batch."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import ROOT, TINY_CONFIG
from rvsl.config import load_config
from rvsl.data.samplers import InferenceBatchSampler, PKBatchSampler, SeededBatches, ShuffleBatchSampler
from rvsl.engine import distributed
from rvsl.evaluation import ImageQualityEvaluator, ReIDEvaluator
from rvsl.modeling import ImagePool
from rvsl.modeling.discriminator import PatchDiscriminator
from rvsl.utils import comm
from rvsl.utils.errors import InputError

# A tiny stage run: configs/tiny.yml (resnet18 at 32 x 32, in the main process) with no augmentation and no
# replay pool (so nothing random is drawn per image); test batches of 4, so that two processes share the 12 test
# images 8 + 4.
TINY = ["MODEL.POOL_SIZE", "0", "INPUT.PADDING", "0", "INPUT.FLIP_PROB", "0.0", "INPUT.RESIZE_RANGE", "[1.0, 1.0]",
        "INPUT.ERASE_PROB", "0.0", "TEST.IMS_PER_BATCH", "4", "SOLVER.MAX_EPOCHS", "1", "SOLVER.WARMUP_LENGTH", "0",
        "SOLVER.AMP", "off"]

# The published train-time augmentation (TINY switches it off).
AUGMENT = ["INPUT.FLIP_PROB", "0.5", "INPUT.RESIZE_RANGE", "[1.0, 1.2]", "INPUT.ERASE_PROB", "0.5"]

# Runs a stage script's own entry point (launch -> train_stage), with Trainer.train wrapped so that it first
# evaluates the stage's test set with the untrained networks, then trains, then saves what each process ends
# with in OUT/rank<r>.pt. MODE "freeze-bn" keeps BatchNorm on its running statistics; "nan-on-rank-1" makes
# rank 1's first translation loss NaN; "sigterm-on-rank-1" sends rank 1 alone a SIGTERM in its first iteration.
DRIVER = '''
import os
import signal
import sys
from pathlib import Path

import torch
from torch import nn

from rvsl.engine import launch, stages
from rvsl.engine.inference import build_evaluators
from rvsl.engine.trainer import Trainer, train_stage
from rvsl.evaluation import inference_on_dataset
from rvsl.utils import comm

out, mode, stage, config, *opts = sys.argv[1:]
train, translation_loss = Trainer.train, stages.translation_loss
calls = []


def poisoned_translation_loss(*args):
    calls.append(1)
    return translation_loss(*args) * (float("nan") if comm.get_rank() == 1 and len(calls) == 1 else 1.0)


def signal_rank_1(step):
    def signalled(*args, **kwargs):
        if comm.get_rank() == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(*args, **kwargs)
    return signalled


def evaluate_train_save(trainer):
    if mode == "sigterm-on-rank-1":
        trainer.train_iteration = signal_rank_1(trainer.train_iteration)
    if mode == "nan-on-rank-1":
        stages.translation_loss = poisoned_translation_loss
    if mode == "freeze-bn":  # BatchNorm on its running statistics for good: every image is computed on its own
        for module in trainer.model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
                module.train = lambda mode=True, module=module: module
    loader, num_query = trainer.test
    evaluators = build_evaluators(trainer.cfg, num_query)
    saved = {"metrics": inference_on_dataset(trainer.model, loader, evaluators, trainer.device),
             "initial": {k: v.clone() for k, v in trainer.model.state_dict().items()},
             "initial_discriminators": {k: v.clone() for k, v in trainer.discriminators.state_dict().items()}}
    if comm.is_main_process():
        saved.update(features={b: evaluators[0].features(b) for b in ("clear", "hazy")}, paths=evaluators[0]._paths)
    train(trainer)
    saved.update(model=trainer.model.state_dict(), discriminators=trainer.discriminators.state_dict(),
                 skipped=trainer.guard.total, pools={d: list(p.images) for d, p in trainer.pools.items()})
    comm.barrier()  # rank 0 has written last.pth: what would each process's pools be after a resume?
    payload = torch.load(Path(out) / "run" / "checkpoint" / "last.pth", weights_only=True)
    for domain in trainer.pools:
        trainer.checkpointer.checkpointables[f"pool.{domain}"].load_state_dict(payload[f"pool.{domain}"])
    saved.update(resumed_pools={d: list(p.images) for d, p in trainer.pools.items()})
    torch.save(saved, Path(out) / f"rank{comm.get_rank()}.pt")


Trainer.train = evaluate_train_save
sys.exit(launch(train_stage, "test driver", stage=stage, argv=["-c", config, "OUTPUT_DIR", str(Path(out) / "run"),
                                                                  *opts]))
'''


def run_driver(tmp_path: Path, name: str, processes: int, stage: str, *opts: str, mode: str = "plain",
               interrupted: bool = False):
    """Run DRIVER in ``processes`` processes (torchrun, gloo) or as one plain process; the saved results by rank
    (``interrupted``: the run is expected to fail, and its output is returned instead)."""
    out = tmp_path / name
    out.mkdir()
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(ROOT / "RVSL"), os.environ.get("PYTHONPATH", "")]))
    env.pop("RVSL_DEBUG", None)
    command = [sys.executable, *(launcher if processes > 1 else []), str(script), str(out), mode, stage,
               str(TINY_CONFIG), *TINY, *opts]
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:  # a worker stuck in a collective: torchrun ends its workers on SIGTERM
            process.terminate()
            process.communicate(timeout=60)
            raise
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if interrupted:
        return result
    assert result.returncode == 0, result.stderr[-4000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(processes)], out, result


def relative_change_error(state, reference, initial, skip=()) -> float:
    """|| (state - initial) - (reference - initial) || / || reference - initial || over the float tensors
    whose name does not end with one of ``skip``."""
    keys = [k for k, v in initial.items() if v.is_floating_point() and not k.endswith(tuple(skip))]
    diff = torch.cat([(state[k] - reference[k]).double().flatten() for k in keys])
    change = torch.cat([(reference[k] - initial[k]).double().flatten() for k in keys])
    return float(diff.norm() / change.norm())


# ---------------------------------------------------------------------------- samplers and evaluators
@pytest.mark.parametrize("processes", [2, 3])
def test_pk_shards_make_the_batches_of_one_process_with_the_global_batch(processes):
    pids = [p for p in range(12) for _ in range(5)]
    one = PKBatchSampler(pids, 2 * processes, 2, seed=7)
    shards = [PKBatchSampler(pids, 2, 2, seed=7, rank=r, num_replicas=processes) for r in range(processes)]
    for epoch in (0, 3):
        for sampler in (one, *shards):
            sampler.set_epoch(epoch)
        glued = [sum(parts, []) for parts in zip(*(list(s) for s in shards))]
        assert glued == list(one) and all(len(s) == len(one) for s in shards)
        for shard in shards:  # each process keeps whole identities: P x K
            for batch in shard:
                assert sorted(pids[i] for i in batch) == sorted(2 * sorted({pids[i] for i in batch}))


def test_shuffle_shards_make_the_batches_of_one_process_with_the_global_batch():
    one = ShuffleBatchSampler(23, 6, seed=2)
    shards = [ShuffleBatchSampler(23, 3, seed=2, rank=r, num_replicas=2) for r in range(2)]
    for epoch in (0, 5):
        for sampler in (one, *shards):
            sampler.set_epoch(epoch)
        assert [a + b for a, b in zip(*shards)] == list(one) and len(shards[0]) == len(one) == 3


def test_augmentation_seeds_are_the_global_batch_s_slices():
    """Every process takes its slice of the global batch's (index, augmentation seed) pairs: glued, they are
    the pairs of one process with the global batch, and no two processes draw the same augmentation."""
    pids = [p for p in range(12) for _ in range(5)]
    for make in (lambda size, **kw: PKBatchSampler(pids, size, 2, seed=7, **kw),
                 lambda size, **kw: ShuffleBatchSampler(23, size, seed=7, **kw)):
        one = SeededBatches(make(4), seed=11)
        shards = [SeededBatches(make(2, rank=r, num_replicas=2), seed=11) for r in range(2)]
        for epoch in (0, 2):
            for sampler in (one, *shards):
                sampler.set_epoch(epoch)
            assert [a + b for a, b in zip(*shards)] == list(one)
            for a, b in zip(*shards):
                assert not {seed for _, seed in a} & {seed for _, seed in b}


def test_too_few_identities_or_images_for_all_processes_are_named():
    with pytest.raises(ValueError, match="at least 8 identities .4 for each of 2 processes"):
        PKBatchSampler(list(range(7)), 4, 1, rank=1, num_replicas=2)
    with pytest.raises(ValueError, match="at least 10 images .5 for each of 2 processes"):
        ShuffleBatchSampler(9, 5, num_replicas=2)


@pytest.mark.parametrize("num_samples, batch_size, processes", [(12, 4, 2), (23, 4, 3), (5, 4, 3), (8, 8, 1)])
def test_inference_shards_are_whole_batches_in_order(num_samples, batch_size, processes):
    one = list(InferenceBatchSampler(num_samples, batch_size))
    shards = [list(InferenceBatchSampler(num_samples, batch_size, r, processes)) for r in range(processes)]
    assert sum(shards, []) == one and one[0] and len(shards[0]) >= len(shards[-1])


def test_gathered_evaluator_states_evaluate_like_one_evaluator():
    torch.manual_seed(0)
    batches = [{"pid": torch.randint(0, 3, (4,)), "camid": torch.arange(4) % 2, "path": [f"{b}_{i}" for i in range(4)],
                "img": torch.rand(4, 3, 16, 16), "twin": torch.rand(4, 3, 16, 16)} for b in range(3)]
    outputs = [{"clear": torch.randn(4, 8), "hazy": torch.randn(4, 8), "dehazed": torch.rand(4, 3, 16, 16),
                "rehazed": torch.rand(4, 3, 16, 16)} for _ in batches]
    for make in (lambda: ReIDEvaluator(num_query=3), ImageQualityEvaluator):
        one, shards = make(), [make(), make()]
        for index, (batch, output) in enumerate(zip(batches, outputs)):
            one.process(batch, output)
            shards[index // 2].process(batch, output)  # process 0 takes batches 0 and 1, process 1 batch 2
        shards[0].load_states([shard.state() for shard in shards])
        assert shards[0].evaluate() == one.evaluate()


def test_a_pool_state_lacking_this_process_restores_rank_0s(monkeypatch, caplog):
    """A checkpoint of fewer processes (or one without other_ranks) gives a further process rank 0's pool, said so."""
    own = [torch.full((3, 2, 2), 1.0)]
    state = {"size": 4, "images": [torch.zeros(3, 2, 2)], "other_ranks": [own]}
    monkeypatch.setattr(comm, "get_rank", lambda: 1)
    pool = ImagePool(4)
    distributed.GatheredPool(pool).load_state_dict(state)
    assert torch.equal(pool.images[0], own[0])
    monkeypatch.setattr(comm, "get_rank", lambda: 2)
    with caplog.at_level(logging.WARNING):
        distributed.GatheredPool(pool).load_state_dict(state)
    assert torch.equal(pool.images[0], torch.zeros(3, 2, 2)) and "no pool of process 2" in caplog.text


def test_sync_bn_needs_cuda_under_several_processes(monkeypatch):
    cfg = load_config(None, ["MODEL.SYNC_BN", "True"])
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    assert distributed.convert_sync_batchnorm(cfg, model, torch.device("cpu")) is model  # one process: kept
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    with pytest.raises(InputError, match="MODEL.SYNC_BN"):
        distributed.convert_sync_batchnorm(cfg, model, torch.device("cpu"))


def test_each_process_takes_its_own_gpu(monkeypatch):
    assert comm.process_device(torch.device("cuda", 1)) == torch.device("cuda", 1)  # not under torchrun
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert comm.process_device(torch.device("cuda")) == torch.device("cuda", 1)
    assert comm.process_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(InputError, match="MODEL.DEVICE"):
        comm.process_device(torch.device("cuda", 0))


# ---------------------------------------------------------------------------- two processes (gloo on CPU)
@pytest.fixture(scope="module")
def stage1_runs(tiny_fvrid, tmp_path_factory):
    """Stage 1 in 2 processes of 2 identities each, and in 1 process of 4 identities: the same global batches.

    BatchNorm is frozen on its running statistics in both, so that every image is computed on its own, and
    the batch-hard triplet is switched off (a margin of -1000 makes its hinge 0): it mines the hardest
    negative among the identities of one process's share, the one loss that is not a mean of per-image
    terms. Every other loss is such a mean, so averaging the processes' gradients is the global batch's.
    The published augmentation is on: each image's flip, resize and erasing come from its seed in the
    global batch, so a process's share is augmented as the one process augments those images.
    """
    tmp_path = tmp_path_factory.mktemp("stage1")
    opts = ["DATASETS.DATA_PATH", str(tiny_fvrid), "LOSS.TRIPLET_MARGIN", "-1000.0", *AUGMENT]
    two, out, result = run_driver(tmp_path, "two", 2, "STAGE1", *opts, "DATALOADER.NUM_IDENTITIES", "2",
                                  mode="freeze-bn")
    one, _, _ = run_driver(tmp_path, "one", 1, "STAGE1", *opts, "DATALOADER.NUM_IDENTITIES", "4", mode="freeze-bn")
    return two, one[0], out, result


def test_both_processes_end_with_the_same_weights(stage1_runs):
    (rank0, rank1), _, _, _ = stage1_runs
    for part in ("model", "discriminators"):
        assert rank0[part].keys() == rank1[part].keys()
        assert all(torch.equal(rank0[part][k], rank1[part][k]) for k in rank0[part]), part


def test_two_processes_train_like_one_with_the_global_batch(stage1_runs):
    """The weight change of 2 processes x 2 identities against that of 1 process x 4 identities, relative.

    Only rounding differs (the gradient all-reduce; convolutions over batches of 4 instead of 8), but
    Adam's first steps move every weight by about rate x sign(gradient), so the few weights whose gradient
    is about 0 move at random: measured 3.7e-4 of the model's change. The discriminators' convolution
    biases in front of an InstanceNorm are left out: the norm removes them, so their gradient is rounding
    alone. Tolerance 1e-2. Without the gradient average (DDP left out once by hand, each process stepping
    on its own share) the error was 0.35 (model) and 0.78 (discriminators; 1.3e-5 with it).
    """
    (rank0, _), one, _, _ = stage1_runs
    net = PatchDiscriminator().net
    before_norm = [f"net.{i}.bias" for i in range(len(net) - 1) if isinstance(net[i + 1], torch.nn.InstanceNorm2d)]
    for part, initial, skip in (("model", "initial", ()), ("discriminators", "initial_discriminators", before_norm)):
        assert all(torch.equal(rank0[initial][k], one[initial][k]) for k in one[initial])  # the same start
        assert relative_change_error(rank0[part], one[part], one[initial], skip) < 1e-2, part


def test_two_process_evaluation_equals_one_process_evaluation(stage1_runs):
    (rank0, rank1), one, _, _ = stage1_runs
    assert rank0["metrics"] == rank1["metrics"] == one["metrics"]  # every process returns rank 0's results
    assert rank0["paths"] == one["paths"]
    for branch in ("clear", "hazy"):
        assert torch.equal(rank0["features"][branch], one["features"][branch])
    assert set(one["metrics"]) == {"clear", "hazy", "fused", "quality"}


def test_only_rank0_writes(stage1_runs):
    _, _, out, result = stage1_runs
    run = out / "run"
    assert (run / "checkpoint" / "last.pth").is_file() and (run / "config.yaml").is_file()
    log = (run / "log.txt").read_text()
    assert "2 processes (torchrun)" in log and log.count("built RVSL") == 1
    assert result.stderr.count("built RVSL") == 1  # rank 1 logs warnings and errors only


def test_stage3_epoch_in_two_processes(tiny_fvrid, tmp_path):
    """Stage 3 (real batches, each with an endless synthetic one) in 2 processes, BatchNorm training as usual,
    and a NaN loss on rank 1 alone in the first iteration: both processes skip that update (neither waits
    alone for the other's gradients), the epoch completes, both end alike (rank 0's BatchNorm statistics are
    shared at the epoch's end), and the checkpoint holds those weights. With replay pools on, each process's
    pool holds its own generated images, and the checkpoint holds every process's: a resume gives each its own."""
    (rank0, rank1), out, _ = run_driver(tmp_path, "stage3", 2, "STAGE3", "DATASETS.DATA_PATH", str(tiny_fvrid),
                                        "DATALOADER.NUM_IDENTITIES", "2", "DATALOADER.REAL_BATCH_SIZE", "6",
                                        "MODEL.POOL_SIZE", "50", mode="nan-on-rank-1")
    assert rank0["pools"]["clear"] and len(rank0["pools"]["clear"]) == len(rank1["pools"]["clear"])
    assert not all(torch.equal(a, b) for a, b in zip(rank0["pools"]["clear"], rank1["pools"]["clear"]))
    for saved in (rank0, rank1):
        for domain, images in saved["pools"].items():
            assert len(saved["resumed_pools"][domain]) == len(images)
            assert all(torch.equal(a, b) for a, b in zip(saved["resumed_pools"][domain], images)), domain
    assert rank0["skipped"] == rank1["skipped"] == {"model": 1, "disc": 0}
    for part in ("model", "discriminators"):
        assert all(torch.equal(rank0[part][k], rank1[part][k]) for k in rank0[part]), part
    assert any(not torch.equal(rank0["model"][k], rank0["initial"][k]) for k in rank0["initial"])
    saved = torch.load(out / "run" / "checkpoint" / "last.pth", weights_only=True)
    assert saved["epoch"] == 1 and all(torch.equal(saved["model"][k], rank0["model"][k]) for k in rank0["model"])


def test_gradient_accumulation_in_two_processes(tiny_fvrid, tmp_path):
    """SOLVER.ACCUM_STEPS 2 under DDP (gradients all-reduced once per update, in its last micro-batch): both
    processes end alike, and like one process with the global micro-batches (the setting and tolerance of
    test_two_processes_train_like_one_with_the_global_batch; model weights)."""
    opts = ["DATASETS.DATA_PATH", str(tiny_fvrid), "LOSS.TRIPLET_MARGIN", "-1000.0", "SOLVER.ACCUM_STEPS", "2"]
    (rank0, rank1), _, _ = run_driver(tmp_path, "two", 2, "STAGE1", *opts, "DATALOADER.NUM_IDENTITIES", "2",
                                      mode="freeze-bn")
    (one,), _, _ = run_driver(tmp_path, "one", 1, "STAGE1", *opts, "DATALOADER.NUM_IDENTITIES", "4", mode="freeze-bn")
    assert all(torch.equal(rank0["model"][k], rank1["model"][k]) for k in rank0["model"])
    assert any(not torch.equal(one["model"][k], one["initial"][k]) for k in one["initial"])  # it did update
    assert relative_change_error(rank0["model"], one["model"], one["initial"]) < 1e-2


def test_sigterm_on_one_process_stops_every_process_at_the_same_iteration(tiny_fvrid, tmp_path):
    """Rank 1 alone gets SIGTERM in its first iteration: both processes stop after that iteration (the flag is
    agreed by an all-reduce) with exit 143, and neither waits alone in a collective (run_driver's timeout)."""
    result = run_driver(tmp_path, "stop", 2, "STAGE1", "DATASETS.DATA_PATH", str(tiny_fvrid),
                        "DATALOADER.NUM_IDENTITIES", "2", "SOLVER.MAX_EPOCHS", "2", mode="sigterm-on-rank-1",
                        interrupted=True)
    assert result.returncode != 0
    assert result.stderr.count("SIGTERM: stopped at epoch 1 iteration 1;") == 2, result.stderr[-4000:]
    assert "143" in result.stderr
    assert not (tmp_path / "stop" / "run" / "checkpoint" / "last.pth").exists()
