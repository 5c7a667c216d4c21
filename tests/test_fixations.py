import numpy as np
import pytest

from aesthal import fixations


def test_from_matlab_xy_is_zero_based_row_col():
    points = fixations.from_matlab_xy([1.0, 800.0], [1.0, 600.0])
    np.testing.assert_array_equal(points, [[0.0, 0.0], [599.0, 799.0]])


def test_from_matlab_xy_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        fixations.from_matlab_xy([1.0, 2.0], [1.0])


def test_points_to_binary_map_rounds_half_away_and_clips():
    points = np.array([[0.5, 1.49], [-3.0, 10.0], [2.0, 2.0], [2.0, 2.0], [np.nan, 1]])
    binary = fixations.points_to_binary_map(points, (3, 4))
    expected = np.zeros((3, 4), np.float32)
    expected[1, 1] = 1  # 0.5 -> 1, 1.49 -> 1
    expected[0, 3] = 1  # clipped
    expected[2, 2] = 1  # repeated fixation marks once; NaN dropped
    np.testing.assert_array_equal(binary, expected)


def test_blur_is_min_max_normalised_and_centred():
    binary = np.zeros((41, 41), np.float32)
    binary[20, 20] = 1
    blurred = fixations.blur_fixation_map(binary, sigma=3.0)
    assert blurred.max() == pytest.approx(1.0)
    assert blurred.min() == pytest.approx(0.0)
    assert np.unravel_index(np.argmax(blurred), blurred.shape) == (20, 20)
    # A Gaussian of sigma 3 falls to exp(-0.5) one sigma away.
    assert blurred[20, 23] == pytest.approx(np.exp(-0.5), rel=1e-3)


def test_blur_of_empty_map_is_zero():
    assert not fixations.blur_fixation_map(np.zeros((5, 5)), 2.0).any()
