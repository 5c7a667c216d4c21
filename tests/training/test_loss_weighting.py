"""Tests for the loss-weighting strategies' formulas."""

import numpy as np
import pytest
import tensorflow as tf

from aesthal.training.balancing import (
    FixedWeighting,
    UncertaintyWeighting,
    get_loss_weighting,
)

LOSSES = {"saliency": tf.constant(1.5), "aesthetics": tf.constant(4.0)}


def test_fixed_weighting_is_a_weighted_sum():
    strategy = FixedWeighting({"saliency": 2.0})
    strategy.build()
    assert float(strategy.combine(LOSSES)) == pytest.approx(2.0 * 1.5 + 1.0 * 4.0)
    assert strategy.trainable_variables == []
    again = FixedWeighting.from_config(strategy.get_config())
    again.build()
    assert float(again.combine(LOSSES)) == pytest.approx(7.0)


def test_uncertainty_weighting_formula():
    strategy = UncertaintyWeighting(initial_log_variance=np.log(2.0))
    strategy.build()
    s = np.log(2.0)
    # sum_t exp(-s_t) L_t + s_t, with both s_t = log 2.
    expected = 0.5 * 1.5 + 0.5 * 4.0 + 2 * s
    assert float(strategy.combine(LOSSES)) == pytest.approx(expected, rel=1e-6)
    # Split over 2 replicas (each holding half the task loss) the sum is the same.
    halves = {t: v / 2 for t, v in LOSSES.items()}
    assert 2 * float(strategy.combine(halves, num_replicas=2)) == pytest.approx(
        expected
    )
    assert [v.name for v in strategy.variables_for_task("saliency")] == [
        "saliency_log_variance"
    ]
    # d/ds_t = 1 - exp(-s_t) L_t.
    with tf.GradientTape() as tape:
        total = strategy.combine(LOSSES)
    grads = tape.gradient(total, strategy.trainable_variables)
    np.testing.assert_allclose(
        [float(g) for g in grads], [1 - 0.75, 1 - 2.0], rtol=1e-6
    )


def test_get_loss_weighting():
    assert isinstance(get_loss_weighting("uncertainty"), UncertaintyWeighting)
    with pytest.raises(ValueError, match="unknown tasks"):
        get_loss_weighting("fixed", {"depth": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        get_loss_weighting("fixed", {"saliency": -1.0})
