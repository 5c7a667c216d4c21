"""Tests for aesthal.losses against hand-worked values."""

import numpy as np
import pytest
import tensorflow as tf

from aesthal import losses


def _map(values):
    """A [1, 2, 2, 1] map from 4 values."""
    return tf.constant(np.asarray(values, np.float32).reshape(1, 2, 2, 1))


def test_kld_hand_value_and_scale_invariance():
    # target (0.5, 0.5, 0, 0) vs uniform 0.25: KL = 2 * 0.5 * log(0.5 / 0.25) = log 2.
    log_q = tf.math.log(_map([0.25] * 4))
    np.testing.assert_allclose(
        losses.kld(_map([1, 1, 0, 0]), log_q), [np.log(2)], rtol=1e-6
    )
    np.testing.assert_allclose(
        losses.kld(_map([7, 7, 0, 0]), log_q), [np.log(2)], rtol=1e-6
    )
    np.testing.assert_allclose(losses.kld(_map([0, 0, 0, 0]), log_q), [0.0])


def test_kld_of_log_softmax_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 5, 1)).astype(np.float32) * 5
    target = rng.uniform(size=(2, 4, 5, 1)).astype(np.float32)
    flat = logits.reshape(2, -1)
    log_q = flat - np.log(np.exp(flat).sum(1, keepdims=True))
    t = target.reshape(2, -1) / target.reshape(2, -1).sum(1, keepdims=True)
    expected = (t * (np.log(t) - log_q)).sum(1)
    got = losses.kld(target, tf.constant(log_q.reshape(logits.shape)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_cc_is_plus_and_minus_one_for_linear_maps():
    target = _map([1, 2, 3, 6])
    np.testing.assert_allclose(losses.cc(target, target * 3.0), [1.0], atol=1e-5)
    np.testing.assert_allclose(losses.cc(target, 10.0 - target), [-1.0], atol=1e-5)
    np.testing.assert_allclose(losses.cc(_map([0, 0, 0, 0]), target), [0.0])


def test_nss_with_binary_map_is_mean_standardised_value_at_fixations():
    pred = np.array([1.0, 2.0, 3.0, 6.0], np.float32)
    z = (pred - pred.mean()) / pred.std()
    got = losses.nss(_map([0, 1, 0, 1]), _map(pred))
    np.testing.assert_allclose(got, [(z[1] + z[3]) / 2], rtol=1e-5)
    # A blurred map weights the standardised prediction by its normalised mass.
    got = losses.nss(_map([0, 1, 0, 3]), _map(pred))
    np.testing.assert_allclose(got, [0.25 * z[1] + 0.75 * z[3]], rtol=1e-5)


def test_squared_emd_hand_values():
    first = np.eye(10, dtype=np.float32)[0:1]
    last = np.eye(10, dtype=np.float32)[9:10]
    # CDFs differ by 1 at scores 1..9 and agree at 10: mean = 9 / 10.
    np.testing.assert_allclose(losses.squared_emd(first, last), [0.9], rtol=1e-6)
    np.testing.assert_allclose(losses.squared_emd(first * 40, first), [0.0], atol=1e-7)


def test_masked_sum_without_labels_is_zero_with_zero_gradient():
    values = tf.Variable([np.nan, 2.0, np.inf])
    with tf.GradientTape() as tape:
        total, count = losses.masked_sum_and_count(
            values * 3.0, tf.constant([0.0, 0.0, 0.0])
        )
    grad = tape.gradient(total, values)
    assert (total.numpy(), count.numpy()) == (0.0, 0.0)
    np.testing.assert_array_equal(grad.numpy(), [0.0, 0.0, 0.0])
    total, count = losses.masked_sum_and_count(values, tf.constant([0.0, 1.0, 0.0]))
    assert (total.numpy(), count.numpy()) == (2.0, 1.0)


def test_emd_with_root_is_nimas_and_its_square_is_the_loss():
    # CDFs (0.5, 1, 1...) and (0, 0.5, 1, ...): |dCDF| = 0.5 at 2 of 10 scores.
    target = tf.constant([[1.0, 1.0] + [0.0] * 8])
    predicted = tf.constant([[0.0, 0.5, 0.5] + [0.0] * 7])
    np.testing.assert_allclose(losses.squared_emd(target, predicted), [0.05])
    np.testing.assert_allclose(
        losses.emd(target, predicted, r=2.0), [np.sqrt(0.05)], rtol=1e-6
    )
    np.testing.assert_allclose(losses.emd(target, predicted, r=1.0), [0.1], rtol=1e-6)


def test_saliency_loss_combines_terms_and_round_trips():
    target, log_q = _map([1, 2, 0, 5]), tf.math.log(_map([0.1, 0.2, 0.3, 0.4]))
    q = tf.exp(log_q)
    loss = losses.SaliencyLoss(1.0, 0.1, 0.1)
    expected = (
        losses.kld(target, log_q)
        - 0.1 * losses.cc(target, q)
        - 0.1 * losses.nss(target, q)
    )
    np.testing.assert_allclose(loss(target, log_q), expected, rtol=1e-6)
    again = losses.SaliencyLoss.from_config(loss.get_config())
    np.testing.assert_allclose(again(target, log_q), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="cc_weight=-0.1"):
        losses.SaliencyLoss(1.0, -0.1)


def test_half_precision_inputs_are_computed_in_float32():
    target = tf.cast(_map([1, 1, 0, 0]), tf.float16)
    log_q = tf.cast(tf.math.log(_map([0.25] * 4)), tf.float16)
    out = losses.kld(target, log_q)
    assert out.dtype == tf.float32
