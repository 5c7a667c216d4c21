"""aesthal.training.runner: trunk initialisation, resuming only under the same config."""

import json

import numpy as np
import pytest

import aesthal
from aesthal.config import ExperimentConfig, TrainConfig
from aesthal.training import runner


def test_init_from_copies_the_trunk_only(tmp_path):
    config = aesthal.ModelConfig(input_size=(32, 32))
    source = aesthal.build_model(config)
    path = tmp_path / "source.keras"
    source.save(path)
    target = aesthal.build_model(config)  # a different random initialisation
    runner._initialise_trunk(target, str(path))
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
        runner._initialise_trunk(other, str(tmp_path / "tiny.keras"))


def test_a_backup_is_only_resumed_under_its_own_config(tmp_path):
    first = ExperimentConfig(
        output_dir=str(tmp_path), train=TrainConfig(learning_rate=1e-3)
    )
    (tmp_path / "backup").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(first.to_dict()))
    runner._check_resumable(tmp_path, first)  # same config: resumable
    second = ExperimentConfig(
        output_dir=str(tmp_path), train=TrainConfig(learning_rate=1e-2)
    )
    with pytest.raises(ValueError, match=r"differs in train\.learning_rate\)"):
        runner.train(second)
