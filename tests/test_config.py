"""Tests for aesthal.config: ModelConfig, DataConfig, TrainConfig, ExperimentConfig."""

import dataclasses
import json

import pytest

from aesthal.config import (
    TAP_NAMES,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
)


def test_round_trip_through_json():
    config = ModelConfig(
        backbone="mobilenet_v2",
        input_size=(64, 96),
        saliency_taps=("stage2", "stage4"),
        aesthetics_taps=("stage5",),
        side_heads=(("saliency", "stage3", 0.5), ("aesthetics", "stage4", 0.25)),
        output_log_density=True,
    )
    restored = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert hash(restored) == hash(config)


def test_defaults_resolve_to_deepest_taps():
    config = ModelConfig(backbone="tiny")
    assert config.resolved_saliency_taps == TAP_NAMES["tiny"][-3:]
    assert config.resolved_aesthetics_taps == ("stage4",)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"backbone": "alexnet"}, "backbone='alexnet' is unknown"),
        ({"input_size": (16, 64)}, ">= 32"),
        ({"saliency_taps": ("stage5",)}, r"unknown taps \['stage5'\]"),
        ({"side_heads": (("depth", "stage1", 1.0),)}, "task 'depth'"),
        ({"side_heads": (("saliency", "stage1", -1.0),)}, "must be >= 0"),
        ({"aesthetics_dropout": 1.0}, "dropout"),
    ],
)
def test_bad_values_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


def test_unknown_dict_key_is_rejected():
    with pytest.raises(ValueError, match="unknown keys"):
        ModelConfig.from_dict({"backbone": "tiny", "depth": 3})


def test_config_round_trip():
    config = ExperimentConfig(
        output_dir="runs/x",
        model=ModelConfig(
            input_size=(32, 48), side_heads=(("saliency", "stage2", 0.3),)
        ),
        data=DataConfig(
            tasks=("saliency",),
            saliency_labels=20,
            aesthetics_labels=50,
            budget_mode="nested",
        ),
        train=TrainConfig(group_learning_rates={"shared": 1e-4}, lr_schedule="cosine"),
    )
    assert ExperimentConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tasks": ("depth",)}, "subset of"),
        ({"budget_mode": "overlap"}, "budget_mode"),
        ({"saliency_labels": 0}, "saliency_labels=0"),
        ({"tasks": ("saliency",), "permute_aesthetics": True}, "permute_aesthetics"),
        ({"tasks": ("aesthetics",), "permute_saliency": True}, "permute_saliency"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_data_config_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(**kwargs)


def test_data_config_saved_without_permute_saliency_loads():
    saved = dataclasses.asdict(DataConfig(permute_saliency=True))
    assert DataConfig(**saved).permute_saliency
    del saved["permute_saliency"]  # a config saved before the field existed
    assert DataConfig(**saved).permute_saliency is False


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "epochs"),
        ({"group_learning_rates": {"trunk": 1e-3}}, "unknown groups"),
        ({"learning_rate": -1.0}, "learning rates must be >= 0"),
        ({"lr_schedule": "exponential"}, "lr_schedule"),
        ({"lr_schedule": "step", "lr_step_factor": 0.0}, "lr_step_factor"),
        ({"lr_schedule": "step", "lr_step_epochs": 0}, "lr_step_epochs"),
        ({"loss_weights": {"depth": 1.0}}, "unknown tasks"),
        (
            {"loss_weighting": "uncertainty", "loss_weights": {"saliency": 2.0}},
            "contradict",
        ),
    ],
)
def test_train_config_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_group_learning_rates_override_the_base():
    rates = TrainConfig(
        learning_rate=1e-3, group_learning_rates={"shared": 1e-4}
    ).learning_rates()
    assert rates == {"shared": 1e-4, "aesthetics": 1e-3, "saliency": 1e-3}


def test_model_config_tasks_are_validated_ordered_and_default_to_both():
    from aesthal.config import TASKS, ModelConfig

    assert ModelConfig().tasks == TASKS
    config = ModelConfig(tasks=["aesthetics", "saliency"])
    assert config.tasks == ("saliency", "aesthetics")  # TASKS order
    assert ModelConfig.from_dict(ModelConfig(tasks=("saliency",)).to_dict()).tasks == (
        "saliency",
    )
    old = ModelConfig().to_dict()
    del old["tasks"]  # a config saved before the field
    assert ModelConfig.from_dict(old).tasks == TASKS
    with pytest.raises(ValueError, match=r"non-empty subset .*; unknown: \['depth'\]"):
        ModelConfig(tasks=("saliency", "depth"))
    with pytest.raises(ValueError, match="non-empty subset"):
        ModelConfig(tasks=())
    with pytest.raises(ValueError, match="must be a tuple of task names"):
        ModelConfig(tasks="saliency")
