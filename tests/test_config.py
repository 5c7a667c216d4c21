"""Tests for aesthal.config.ModelConfig."""

import json

import pytest

from aesthal.config import TAP_NAMES, ModelConfig


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
