"""aesthal.experiment: config checks, round trip, trunk initialisation."""

import json

import numpy as np
import pytest

import aesthal
from aesthal import experiment


def test_config_round_trip():
    config = experiment.ExperimentConfig(
        output_dir="runs/x",
        model=aesthal.ModelConfig(
            input_size=(32, 48), side_heads=(("saliency", "stage2", 0.3),)
        ),
        data=experiment.DataConfig(
            tasks=("saliency",),
            saliency_labels=20,
            aesthetics_labels=50,
            budget_mode="nested",
        ),
        train=experiment.TrainConfig(
            group_learning_rates={"shared": 1e-4}, lr_schedule="cosine"
        ),
    )
    assert experiment.ExperimentConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tasks": ("depth",)}, "subset of"),
        ({"budget_mode": "overlap"}, "budget_mode"),
        ({"saliency_labels": 0}, "saliency_labels=0"),
        ({"tasks": ("saliency",), "permute_aesthetics": True}, "permute_aesthetics"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_data_config_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        experiment.DataConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "epochs"),
        ({"group_learning_rates": {"trunk": 1e-3}}, "unknown groups"),
        ({"learning_rate": -1.0}, "learning rates must be >= 0"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"loss_weights": {"depth": 1.0}}, "unknown tasks"),
        (
            {"loss_weighting": "uncertainty", "loss_weights": {"saliency": 2.0}},
            "contradict",
        ),
    ],
)
def test_train_config_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        experiment.TrainConfig(**kwargs)


def test_group_learning_rates_override_the_base():
    rates = experiment.TrainConfig(
        learning_rate=1e-3, group_learning_rates={"shared": 1e-4}
    ).learning_rates()
    assert rates == {"shared": 1e-4, "aesthetics": 1e-3, "saliency": 1e-3}


def test_init_from_copies_the_trunk_only(tmp_path):
    config = aesthal.ModelConfig(input_size=(32, 32))
    source = aesthal.build_model(config)
    path = tmp_path / "source.keras"
    source.save(path)
    target = aesthal.build_model(config)  # a different random initialisation
    experiment._initialise_trunk(target, str(path))
    for a, b in zip(
        source.backbone.get_weights(), target.backbone.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    heads = zip(
        source.saliency_head.get_weights(),
        target.saliency_head.get_weights(),
        strict=True,
    )
    assert any(not np.array_equal(a, b) for a, b in heads)


def test_init_from_rejects_another_trunk(tmp_path):
    source = aesthal.build_model(aesthal.ModelConfig(input_size=(32, 32)))
    source.save(tmp_path / "tiny.keras")
    other = aesthal.build_model(
        aesthal.ModelConfig(backbone="mobilenet_v2", input_size=(32, 32))
    )
    with pytest.raises(ValueError, match="its trunk is 'tiny'"):
        experiment._initialise_trunk(other, str(tmp_path / "tiny.keras"))


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown data set 'no_such_set'"):
        experiment.prepare_data(experiment.DataConfig(dataset="no_such_set"))


def test_split_expressions_are_checked_against_the_data_set(tmp_path):
    data = experiment.DataConfig(
        dataset="synthetic_scenes/tiny", data_dir=str(tmp_path)
    )
    builder = experiment.prepare_data(data)
    experiment.check_split(builder, "train[:50%]+validation")  # valid: no error
    with pytest.raises(ValueError, match=r"names \['valid'\], but the data set has"):
        experiment.check_split(builder, "train[:10]+valid[:2]")


def test_a_backup_is_only_resumed_under_its_own_config(tmp_path):
    first = experiment.ExperimentConfig(
        output_dir=str(tmp_path), train=experiment.TrainConfig(learning_rate=1e-3)
    )
    (tmp_path / "backup").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(first.to_dict()))
    experiment._check_resumable(tmp_path, first)  # same config: resumable
    second = experiment.ExperimentConfig(
        output_dir=str(tmp_path), train=experiment.TrainConfig(learning_rate=1e-2)
    )
    with pytest.raises(ValueError, match=r"differs in train\.learning_rate\)"):
        experiment.train(second)
