"""`ModelConfig` as parts (trunk, saliency head, aesthetics head, sharing),
its versioned dict and the migration of older configs."""

import json

import pytest
from conftest import version1_dict

from aesthal.config import (
    CONFIG_VERSION,
    AestheticsHeadConfig,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    SaliencyHeadConfig,
    SharingConfig,
    TrunkConfig,
    migration,
)

READOUT = ModelConfig(
    trunk=TrunkConfig(name="vgg16", frozen_up_to="stage4"),
    saliency=SaliencyHeadConfig(
        kind="readout", readout_taps=("stage4", "stage5"), centre_prior="fixed"
    ),
    aesthetics=AestheticsHeadConfig(dropout=0.25),
    input_size=(64, 96),
    side_heads=(("saliency", "stage3", 0.5),),
)


def test_parts_and_flat_keywords_make_the_same_config():
    flat = ModelConfig(
        backbone="vgg16",
        frozen_up_to="stage4",
        saliency_head="readout",
        readout_taps=["stage4", "stage5"],
        centre_prior="fixed",
        aesthetics_dropout=0.25,
        input_size=(64, 96),
        side_heads=[("saliency", "stage3", 0.5)],
    )
    assert flat == READOUT
    # The flat names read the parts.
    assert (flat.backbone, flat.saliency_head, flat.aesthetics_dropout) == (
        "vgg16",
        "readout",
        0.25,
    )
    assert flat.readout_taps == READOUT.saliency.readout_taps == ("stage4", "stage5")
    with pytest.raises(TypeError, match="unknown keyword.*'trunk_name'"):
        ModelConfig(trunk_name="vgg16")


def test_to_dict_is_nested_versioned_json_and_round_trips():
    stored = READOUT.to_dict()
    assert stored["config_version"] == CONFIG_VERSION == 2
    assert stored["trunk"] == {
        "name": "vgg16",
        "weights": None,
        "frozen_up_to": "stage4",
        "frozen_batch_norm": False,
    }
    assert stored["saliency"]["kind"] == "readout"
    assert stored["task_sharing"]["mode"] == "hard"
    assert json.loads(json.dumps(stored)) == stored  # plain JSON types
    assert ModelConfig.from_dict(json.loads(json.dumps(stored))) == READOUT


def test_a_version_1_flat_dict_reads_as_the_same_config():
    flat = version1_dict(READOUT)
    assert "config_version" not in flat and flat["backbone"] == "vgg16"
    assert ModelConfig.from_dict(flat) == READOUT
    # Fields later than the file are absent and take their defaults.
    for key in ("sharing", "coupling_weight", "frozen_batch_norm"):
        del flat[key]
    assert ModelConfig.from_dict(flat) == READOUT
    flat["colour"] = "red"
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        ModelConfig.from_dict(flat)


def test_unknown_part_fields_and_newer_versions_are_refused():
    stored = READOUT.to_dict()
    stored["trunk"]["nme"] = "vgg16"
    with pytest.raises(ValueError, match=r"unknown keys \['trunk.nme'\]"):
        ModelConfig.from_dict(stored)
    newer = dict(READOUT.to_dict(), config_version=CONFIG_VERSION + 1)
    with pytest.raises(ValueError, match="newer aesthal.*upgrade"):
        ModelConfig.from_dict(newer)
    with pytest.raises(ValueError, match="not a version"):
        ModelConfig.from_dict(dict(READOUT.to_dict(), config_version="2"))


def test_a_version_1_run_config_migrates_with_its_data_tasks():
    config = ExperimentConfig(
        output_dir="runs/x",
        model=ModelConfig(tasks=("saliency",)),
        data=DataConfig(tasks=("saliency",)),
    )
    old = json.loads(json.dumps(config.to_dict()))
    del old["config_version"]
    old["model"] = version1_dict(config.model)
    del old["model"]["tasks"]  # before ModelConfig.tasks: the data's tasks
    migrated = migration.migrate_experiment(old)
    assert migrated["config_version"] == CONFIG_VERSION
    assert migrated["model"]["tasks"] == ["saliency"]
    assert ExperimentConfig.from_dict(old) == config


def test_each_part_checks_its_fields_naming_the_flag():
    with pytest.raises(ValueError, match=r"TrunkConfig.name \(--backbone\)"):
        TrunkConfig(name="resnet9")
    with pytest.raises(ValueError, match=r"frozen_up_to.*not a tap of backbone"):
        TrunkConfig(name="tiny", frozen_up_to="stage9")
    with pytest.raises(ValueError, match="apply to the readout head only"):
        SaliencyHeadConfig(centre_prior="fixed")
    with pytest.raises(ValueError, match=r"--aesthetics_dropout.*\[0, 1\)"):
        AestheticsHeadConfig(dropout=1.0)
    with pytest.raises(ValueError, match="applies to sharing='soft' only"):
        SharingConfig(coupling_weight=0.5)
    # Across parts: ModelConfig.
    with pytest.raises(ValueError, match="readout_taps.*unknown"):
        ModelConfig(saliency_head="readout", readout_taps=("stage9",))
    with pytest.raises(ValueError, match="frozen_up_to"):
        ModelConfig(sharing="soft", frozen_up_to="stage2")
    # Cross-stitch taps in the trunk's order.
    stitched = ModelConfig(
        sharing="cross_stitch", cross_stitch_taps=("stage3", "stage1")
    )
    assert stitched.task_sharing.cross_stitch_taps == ("stage1", "stage3")
