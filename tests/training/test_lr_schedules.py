"""The learning-rate schedules `build_optimizers` gives each group."""

import keras
import numpy as np
import pytest

from aesthal.config import TrainConfig
from aesthal.training.runner import build_optimizers


def _rates(train, steps):
    optimizers = build_optimizers(train)
    out = {}
    for group, optimizer in optimizers.items():
        # Keras 3 keeps the schedule object the optimizer was built with.
        schedule = optimizer._learning_rate
        assert isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule)
        out[group] = [float(schedule(step)) for step in steps]
    return out


def test_step_schedule_multiplies_every_interval_per_group():
    train = TrainConfig(
        epochs=25,
        steps_per_epoch=4,
        learning_rate=1e-2,
        group_learning_rates={"saliency": 2e-2},
        lr_schedule="step",
        lr_step_epochs=10,
        lr_step_factor=0.3,
    )
    # Boundaries at steps 40 and 80 (10 epochs of 4 steps); the last 5
    # epochs run at 0.09 of the base rate.
    rates = _rates(train, [0, 39, 40, 79, 80, 99])
    np.testing.assert_allclose(
        rates["shared"], [1e-2, 1e-2, 3e-3, 3e-3, 9e-4, 9e-4], rtol=1e-6
    )
    np.testing.assert_allclose(
        rates["saliency"], [2e-2, 2e-2, 6e-3, 6e-3, 1.8e-3, 1.8e-3], rtol=1e-6
    )


def test_step_schedule_shorter_than_one_interval_is_constant():
    train = TrainConfig(
        epochs=3, steps_per_epoch=5, learning_rate=1e-3, lr_schedule="step"
    )
    optimizer = build_optimizers(train)["shared"]
    assert float(optimizer.learning_rate) == pytest.approx(1e-3)
