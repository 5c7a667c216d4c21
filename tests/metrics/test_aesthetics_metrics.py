"""Aesthetics metrics against hand-worked values."""

import numpy as np
import pytest

from aesthal.metrics import aesthetics


def _delta(score, votes=1.0):
    out = np.zeros(10)
    out[score - 1] = votes
    return out


def test_mean_score_of_votes_and_distributions():
    votes = np.array([_delta(5, 3), _delta(1) + _delta(10)])
    np.testing.assert_allclose(aesthetics.mean_score(votes), [5.0, 5.5])
    np.testing.assert_allclose(aesthetics.mean_score(votes / 7), [5.0, 5.5])


@pytest.mark.parametrize(
    "a, b, r, expected",
    [
        (1, 10, 1, 0.9),  # |dCDF| = 1 on bins 1..9, 0 on bin 10
        (1, 10, 2, np.sqrt(0.9)),
        (5, 6, 1, 0.1),
        (5, 6, 2, np.sqrt(0.1)),
        (7, 7, 2, 0.0),
    ],
)
def test_emd_hand_worked(a, b, r, expected):
    value = aesthetics.emd(_delta(a, 4.0)[None], _delta(b)[None], r=r)
    assert value.shape == (1,)
    assert value[0] == pytest.approx(expected)


def test_emd_is_symmetric_and_scale_free():
    rng = np.random.default_rng(0)
    p, q = rng.random((3, 10)), rng.random((3, 10))
    np.testing.assert_allclose(aesthetics.emd(p, q), aesthetics.emd(q, p))
    np.testing.assert_allclose(aesthetics.emd(100 * p, q), aesthetics.emd(p, q))


def test_binary_accuracy_threshold_is_inclusive_at_5():
    # Means: true [4.5, 5, 7], predicted [5, 4, 8]: only the last agrees.
    y_true = np.array([_delta(4) + _delta(5), _delta(5), _delta(7)])
    y_pred = np.array([_delta(5), _delta(4), _delta(8)])
    assert aesthetics.binary_accuracy(y_true, y_pred) == pytest.approx(1 / 3)
    assert aesthetics.binary_accuracy(y_true, y_true) == 1.0


def test_correlations_and_mse():
    y_true = np.array([_delta(2), _delta(4), _delta(6), _delta(8)])
    y_pred = np.array([_delta(1), _delta(2), _delta(3), _delta(9)])  # monotone
    assert aesthetics.srcc(y_true, y_pred) == pytest.approx(1.0)
    assert aesthetics.plcc(y_true, y_pred) == pytest.approx(
        np.corrcoef([2, 4, 6, 8], [1, 2, 3, 9])[0, 1]
    )
    # Squared errors of means: 1, 4, 9, 1 -> 15 / 4.
    assert aesthetics.mean_score_mse(y_true, y_pred) == pytest.approx(3.75)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="rows \\[1\\] have no votes"):
        aesthetics.mean_score(np.array([_delta(3), np.zeros(10)]))
    with pytest.raises(ValueError, match="must be \\[N, 10\\]"):
        aesthetics.mean_score(np.ones((2, 9)))
    with pytest.raises(ValueError, match="differ in shape"):
        aesthetics.emd(np.ones((2, 10)), np.ones((3, 10)))
    with pytest.raises(ValueError, match="constant"):
        aesthetics.srcc(np.array([_delta(3), _delta(3)]), np.ones((2, 10)))
    with pytest.raises(ValueError, match="at least 2"):
        aesthetics.plcc(_delta(3)[None], _delta(4)[None])
