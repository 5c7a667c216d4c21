"""TensorBoard output of `aesthal.training.runner.train`, read from the event files."""

from __future__ import annotations

import collections
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

import aesthal
from aesthal.config import DataConfig, ExperimentConfig, TrainConfig
from aesthal.data import prepare
from aesthal.drawing import heat_map
from aesthal.training import callbacks as callbacks_lib
from aesthal.training import runner


def _events(folder: pathlib.Path) -> dict[str, dict[int, np.ndarray]]:
    """`{tag: {step: value}}` of every event file directly in `folder`."""
    out = collections.defaultdict(dict)
    files = sorted(folder.glob("events.out.tfevents.*"))
    assert files, f"no event files in {folder}"
    for path in files:
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                out[value.tag][event.step] = tf.make_ndarray(value.tensor)
    return out


@pytest.mark.slow
def test_train_writes_losses_weights_learning_rates_and_map_panels(tmp_path):
    config = ExperimentConfig(
        output_dir=str(tmp_path / "run"),
        model=aesthal.ModelConfig(input_size=(32, 48)),
        data=DataConfig(
            dataset="synthetic_scenes/tiny",
            data_dir=str(tmp_path / "tfds"),
            batch_size=4,
        ),
        train=TrainConfig(
            epochs=2,
            steps_per_epoch=2,
            validation_steps=1,
            group_learning_rates={"shared": 1e-4, "saliency": 2e-3},
            loss_weights={"saliency": 2.0, "aesthetics": 0.5},
            tensorboard_images=3,
        ),
    )
    runner.train(config, verbose=0)
    board = tmp_path / "run" / "tensorboard"
    history = json.loads((tmp_path / "run" / "history.json").read_text())

    train = _events(board / "train")
    for task in aesthal.TASKS:
        assert set(train[f"epoch_{task}_loss"]) == {0, 1}
    for epoch in (0, 1):
        np.testing.assert_allclose(
            train["epoch_loss"][epoch], history["loss"][epoch], rtol=1e-6
        )
        np.testing.assert_allclose(train["epoch_saliency_weight"][epoch], 2.0)
        np.testing.assert_allclose(train["epoch_aesthetics_weight"][epoch], 0.5)
        np.testing.assert_allclose(train["epoch_shared_lr"][epoch], 1e-4, rtol=1e-6)
        np.testing.assert_allclose(train["epoch_saliency_lr"][epoch], 2e-3, rtol=1e-6)
        np.testing.assert_allclose(train["epoch_aesthetics_lr"][epoch], 1e-3, rtol=1e-6)
        assert train["epoch_shared_nonfinite"][epoch] == 0
    validation = _events(board / "validation")
    np.testing.assert_allclose(
        validation["epoch_saliency_loss"][1], history["val_saliency_loss"][1], rtol=1e-6
    )

    panels = _events(board / "images")[callbacks_lib.SaliencyImageLogger.TAG]
    assert set(panels) == {0, 1}
    width, height, *encoded = panels[1]  # summary v2 images: w, h, PNGs
    assert (int(width), int(height), len(encoded)) == (3 * 48, 32, 3)
    first = tf.io.decode_png(encoded[0]).numpy()
    assert first.shape == (32, 3 * 48, 3)
    examples = prepare.validation_dataset(config.data, (32, 48)).unbatch()
    image, targets, _ = next(iter(examples))
    np.testing.assert_array_equal(
        first[:, :48], np.round(image.numpy()).astype(np.uint8)
    )
    np.testing.assert_array_equal(
        first[:, 48:96], heat_map(targets["saliency"].numpy()[None])[0]
    )
    # The prediction panel changes as the model trains.
    earlier = tf.io.decode_png(panels[0][2]).numpy()
    assert not np.array_equal(earlier[:, 96:], first[:, 96:])
