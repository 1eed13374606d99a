"""Config loading: every shipped YAML, merge order, and the messages for bad keys and values."""

from pathlib import Path

import pytest

from helpers import EXPECTED_DEV_FOLDERS, EXPECTED_FOLDERS, ROOT, run_cli
from rvsl.config import config_from_dict, config_to_dict, get_cfg_defaults, load_config
from rvsl.utils.errors import InputError

YAMLS = sorted((ROOT / "configs").glob("*.yml"))


def test_configs_exist():
    assert {p.name for p in YAMLS} >= {"FVRID.yml", "demo.yml"}


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.name)
def test_every_yaml_loads(path: Path):
    cfg = load_config(str(path))
    assert cfg.is_frozen()
    assert cfg.MODE.STAGE == "STAGE1"


def test_published_configs_differ_only_in_what_the_reference_ran_otherwise():
    """FVRID.yml is the recipe as written, FVRID_reference.yml as the reference ran: the schedule stepped per epoch
    and once before the first, no pixel normalisation, the reference's generators; nothing else differs."""
    written = config_to_dict(load_config(str(ROOT / "configs" / "FVRID.yml")))
    as_ran = config_to_dict(load_config(str(ROOT / "configs" / "FVRID_reference.yml")))

    def flat(node, prefix=""):
        return {k2: v2 for k, v in node.items()
                for k2, v2 in (flat(v, f"{prefix}{k}.").items() if isinstance(v, dict) else [(prefix + k, v)])}

    differ = {k for k, v in flat(written).items() if flat(as_ran)[k] != v}
    assert differ == {"SOLVER.WARMUP_UNIT", "SOLVER.SCHEDULE_OFFSET", "INPUT.PIXEL_MEAN", "INPUT.PIXEL_STD",
                      "MODEL.GENERATOR", "OUTPUT_DIR"}
    assert (written["SOLVER"]["WARMUP_UNIT"], as_ran["SOLVER"]["WARMUP_UNIT"]) == ("iteration", "epoch")
    assert (written["SOLVER"]["SCHEDULE_OFFSET"], as_ran["SOLVER"]["SCHEDULE_OFFSET"]) == (0, 1)


def test_published_configs_carry_the_reference_recipe():
    """The reference recipe as it ran, checked key by key against its numbers (README, "Differences from the
    reference implementation")."""
    cfg = load_config(str(ROOT / "configs" / "FVRID_reference.yml"))
    # its loader never normalised (DATALOADER.NORMALZIE False): the networks read RGB in [0, 1]
    assert (cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD, cfg.INPUT.PADDING) == ([0.0] * 3, [1.0] * 3, 0)
    assert cfg.MODEL.GENERATOR == "reference" and cfg.SOLVER.SCHEDULE_OFFSET == 1
    assert cfg.LOSS.LABEL_SMOOTH == 0.0
    assert cfg.SOLVER.STEPS == [20, 30] + [45 + 15 * i for i in range(15)] and cfg.SOLVER.STEPS[-1] == 255
    assert (cfg.SOLVER.GAMMA, cfg.SOLVER.WARMUP_FACTOR, cfg.SOLVER.WARMUP_LENGTH) == (0.6, 0.01, 200)
    assert (cfg.INPUT.FLIP_PROB, cfg.INPUT.RESIZE_RANGE, cfg.INPUT.ERASE_PROB, cfg.INPUT.ERASE_AREA) == \
        (0.5, [1.0, 1.2], 0.5, [0.02, 0.4])
    assert cfg.INPUT.ERASE_ASPECT == 0.3 and cfg.INPUT.ERASE_FILL == [0.4914, 0.4822, 0.4465]
    assert (cfg.MODEL.NAME, cfg.MODEL.LAST_STRIDE, cfg.INPUT.SIZE_TRAIN) == ("resnet50_ibn_a", 2, [384, 384])


def test_base_is_merged_first_and_the_file_overrides_it(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "base.yml").write_text("SOLVER:\n  MAX_EPOCHS: 7\n  BASE_LR: 0.5\nMODEL:\n  NAME: resnet34\n")
    (tmp_path / "sub" / "mid.yml").write_text("_BASE_: ../base.yml\nSOLVER:\n  BASE_LR: 0.25\n")
    (tmp_path / "sub" / "top.yml").write_text("_BASE_: mid.yml\nSOLVER:\n  MAX_EPOCHS: 3\n")
    cfg = load_config(str(tmp_path / "sub" / "top.yml"), ["MODEL.NAME", "resnet18"])
    assert (cfg.SOLVER.MAX_EPOCHS, cfg.SOLVER.BASE_LR, cfg.MODEL.NAME) == (3, 0.25, "resnet18")
    assert "_BASE_" not in cfg


@pytest.mark.parametrize("files, message", [
    ({"top.yml": "_BASE_: gone.yml\n"}, "gone.yml (the _BASE_ of"),
    ({"top.yml": "_BASE_: other.yml\n", "other.yml": "_BASE_: top.yml\n"}, "_BASE_ chain comes back to"),
    ({"top.yml": "_BASE_: [a.yml, b.yml]\n"}, "_BASE_ must be one file name"),
    ({"top.yml": "_BASE_: bad.yml\n", "bad.yml": "SOLVER: [unclosed\n"}, "bad.yml: not a readable YAML config"),
    ({"top.yml": "_BASE_: bad.yml\n", "bad.yml": "SOLVER:\n  NO_SUCH_KEY: 1\n"}, "bad.yml: unknown config key"),
])
def test_bad_base_chains_name_the_file(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(str(tmp_path / "top.yml"))


def test_merge_order_file_then_opts():
    cfg = load_config(str(ROOT / "configs" / "demo.yml"), ["SOLVER.MAX_EPOCHS", "7", "MODEL.NAME", "resnet34"])
    assert cfg.SOLVER.MAX_EPOCHS == 7 and cfg.MODEL.NAME == "resnet34"
    assert cfg.INPUT.SIZE_TRAIN == [64, 64]  # from the file
    assert cfg.SOLVER.BASE_LR == 3e-4  # file overrides default


def test_stage_is_fixed_by_script():
    assert load_config(None, [], stage="STAGE2").MODE.STAGE == "STAGE2"
    assert load_config(None, ["MODE.STAGE", "STAGE3"], stage="STAGE3").MODE.STAGE == "STAGE3"
    with pytest.raises(InputError, match="MODE.STAGE is STAGE1 but this script trains STAGE2"):
        load_config(None, ["MODE.STAGE", "STAGE1"], stage="STAGE2")


@pytest.mark.parametrize("opts, message", [
    (["SOLVER.MAX_EPOCH", "3"], "unknown config key 'MAX_EPOCH'"),
    (["SOLVER.MAX_EPOCHS", "many"], "SOLVER.MAX_EPOCHS"),
    (["MODEL.NAME", "resnet9"], "MODEL.NAME is 'resnet9'"),
    (["SOLVER.AMP", "yes"], "SOLVER.AMP"),
    (["SOLVER.MAX_EPOCHS"], "has no value"),
    (["INPUT.SIZE_TRAIN", "[30, 64]"], "INPUT.SIZE_TRAIN"),
    (["SOLVER.BEST_METRIC", "fusion/mAP"], "SOLVER.BEST_METRIC"),
    (["SOLVER.WARMUP_UNIT", "epochs"], "SOLVER.WARMUP_UNIT"),
    (["SOLVER.LOG_PERIOD", "0"], "SOLVER.LOG_PERIOD"),
    (["SOLVER.WARMUP_FACTOR", "0.0"], "SOLVER.WARMUP_FACTOR"),
    (["SOLVER.WARMUP_FACTOR", "1.5"], "SOLVER.WARMUP_FACTOR"),
    (["TEST.VIS_NUM", "0"], "TEST.VIS_NUM"),
    (["INPUT.FLIP_PROB", "1.5"], "INPUT.FLIP_PROB must be a number, each in [0.0, 1.0]; got 1.5"),
    (["INPUT.RESIZE_RANGE", "[0.9, 1.2]"], "INPUT.RESIZE_RANGE must be [low, high] with low <= high"),
    (["INPUT.RESIZE_RANGE", "[1.2, 1.0]"], "INPUT.RESIZE_RANGE must be [low, high] with low <= high"),
    (["INPUT.RESIZE_RANGE", "[1.0]"], "INPUT.RESIZE_RANGE"),
    (["INPUT.PADDING", "-1"], "INPUT.PADDING"),
    (["INPUT.ERASE_PROB", "-0.1"], "INPUT.ERASE_PROB"),
    (["INPUT.ERASE_AREA", "[0.4, 0.02]"], "INPUT.ERASE_AREA must be [low, high]"),
    (["INPUT.ERASE_AREA", "[0.02, 1.5]"], "INPUT.ERASE_AREA"),
    (["INPUT.ERASE_ASPECT", "0.0"], "INPUT.ERASE_ASPECT"),
    (["INPUT.ERASE_ASPECT", "3.3"], "INPUT.ERASE_ASPECT"),
    (["INPUT.ERASE_FILL", "[0.5, 0.5]"], "INPUT.ERASE_FILL must be 3 numbers"),
    (["INPUT.ERASE_FILL", "['a', 0.5, 0.5]"], "INPUT.ERASE_FILL"),
    (["VAL.SYN_IDENTITIES", "-1"], "VAL.SYN_IDENTITIES must be 0"),
])
def test_bad_options_name_the_key(opts, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[")):
        load_config(None, opts)


def test_unknown_key_in_yaml_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("SOLVER:\n  MAX_EPOCH: 3\n")
    with pytest.raises(InputError, match=r"bad.yml: unknown config key 'MAX_EPOCH'"):
        load_config(str(bad))


def test_checkpoint_config_round_trip():
    cfg = load_config(None, ["MODEL.NAME", "resnet18", "INPUT.SIZE_TEST", "[64, 32]"])
    plain = config_to_dict(cfg)
    assert isinstance(plain["INPUT"]["SIZE_TEST"], list)
    again = config_from_dict(plain)
    assert again == cfg


def test_defaults_hold_every_dataset_folder_key():
    keys = [k for k in get_cfg_defaults().DATASETS if k.endswith("_PATH") and k != "DATA_PATH"]
    assert sorted(keys) == sorted([*EXPECTED_FOLDERS, *EXPECTED_DEV_FOLDERS])  # the twelve, and the dev split


def test_mistyped_key_on_the_command_line_exits_2(tmp_path):
    out = tmp_path / "out"
    result = run_cli(["RVSL/stage1_trainer.py", "-c", "configs/demo.yml", "SOLVER.MAX_EPOCH", "3",
                      "OUTPUT_DIR", str(out)])
    assert result.returncode == 2
    assert "MAX_EPOCH" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()  # nothing written before the config is valid


def test_a_checkpoint_config_of_another_version_is_named():
    old = config_to_dict(get_cfg_defaults())
    old["SOLVER"]["WARMUP_ITERS"] = 200  # a key renamed since
    with pytest.raises(InputError, match=r"TEST.WEIGHT: old.pth: its stored config .*WARMUP_ITERS"):
        config_from_dict(old, "TEST.WEIGHT: old.pth")
