"""Centre bias, uniform baseline and the explainable information gain share."""

import numpy as np
import pytest

from aesthal.metrics import baselines


def test_centre_bias_counts_points_in_relative_coordinates():
    # (5, 5) of a 10x10 image and (10, 10) of a 20x20 image both fall in cell
    # (2, 2) of a 4x4 grid; a near-zero sigma keeps the counts.
    fixations = [
        (np.array([[5.0, 5.0]]), (10, 10)),
        (np.array([[10.0, 10.0], [0.0, 19.0]]), (20, 20)),
    ]
    density = baselines.fit_centre_bias(fixations, (4, 4), sigma_fraction=1e-3)
    expected = np.zeros((4, 4))
    expected[2, 2] = 2 / 3
    expected[0, 3] = 1 / 3
    np.testing.assert_allclose(density, expected, atol=1e-9)


def test_centre_bias_is_a_centred_symmetric_density():
    rng = np.random.default_rng(0)
    fixations = [
        (rng.normal([h / 2 - 0.5, w / 2 - 0.5], [h / 8, w / 8], (200, 2)), (h, w))
        for h, w in [(30, 40), (60, 20)]
    ]
    density = baselines.fit_centre_bias(fixations, (32, 32), sigma_fraction=0.1)
    assert density.sum() == pytest.approx(1.0)
    assert density.min() >= 0
    peak = np.unravel_index(np.argmax(density), density.shape)
    assert abs(peak[0] - 15.5) <= 3 and abs(peak[1] - 15.5) <= 3
    assert density[16, 16] > 10 * density[0, 0]


def test_centre_bias_without_fixations_raises():
    with pytest.raises(ValueError, match="no fixations"):
        baselines.fit_centre_bias([(np.zeros((0, 2)), (5, 5))])


def test_resize_density_and_uniform():
    density = baselines.resize_density(np.array([[0.0, 1.0], [1.0, 2.0]]), (6, 9))
    assert density.shape == (6, 9)
    assert density.sum() == pytest.approx(1.0)
    assert density.min() >= 0
    assert density[-1, -1] > density[0, 0]
    uniform = baselines.uniform_density((3, 4))
    np.testing.assert_allclose(uniform, np.full((3, 4), 1 / 12))
    with pytest.raises(ValueError, match="all zeros"):
        baselines.resize_density(np.zeros((2, 2)), (3, 3))


def test_explainable_information_gain_share():
    share = baselines.explainable_information_gain_share
    assert share(1.5, 0.5, 2.5) == pytest.approx(0.5)
    assert share(0.0, 0.0, 2.0) == 0.0
    assert share(2.0, 0.0, 2.0) == 1.0
    np.testing.assert_allclose(share(np.array([0.0, 1.0]), 0.0, 2.0), [0.0, 0.5])
    with pytest.raises(ValueError, match="IG_truth must exceed IG_centre"):
        share(1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="IG_truth is NaN or infinite"):
        share(1.0, 0.0, np.nan)
    with pytest.raises(ValueError, match="IG_model is NaN or infinite"):
        share(np.array([0.5, np.inf]), 0.0, 2.0)


def test_centre_bias_uniform_weight_sets_a_floor():
    fixations = [(np.array([[5.0, 5.0]]), (10, 10))]
    density = baselines.fit_centre_bias(
        fixations, (4, 4), sigma_fraction=1e-3, uniform_weight=0.5
    )
    assert density.sum() == pytest.approx(1.0)
    assert density[0, 0] == pytest.approx(0.5 / 16)
    assert density[2, 2] == pytest.approx(0.5 + 0.5 / 16)
    with pytest.raises(ValueError, match="uniform_weight"):
        baselines.fit_centre_bias(fixations, uniform_weight=2.0)
