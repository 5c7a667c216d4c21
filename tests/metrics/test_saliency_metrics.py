"""Saliency metrics against hand-worked values, the MIT reference loop, invariances."""

import cv2
import numpy as np
import pytest

from aesthal.metrics import saliency

EPS = np.finfo(np.float64).eps


def _binary(shape, *pixels):
    out = np.zeros(shape, np.float32)
    for pixel in pixels:
        out[pixel] = 1.0
    return out


def reference_auc_judd_loop(saliency_map, fixation_map, noise=None):
    """A line-by-line transcription of MIT AUC_Judd.m (same-size maps)."""
    s_map = np.asarray(saliency_map, np.float64)
    if noise is not None:  # our jitter is applied to the [0, 1] map
        s_map = (s_map - s_map.min()) / (s_map.max() - s_map.min()) + noise
    s_map = (s_map - s_map.min()) / (s_map.max() - s_map.min())
    s_flat = s_map.ravel()
    f_flat = np.asarray(fixation_map).ravel()
    sth = s_flat[f_flat > 0]
    n_fix, n_pix = len(sth), len(s_flat)
    allthreshes = np.sort(sth)[::-1]
    tp = np.zeros(n_fix + 2)
    fp = np.zeros(n_fix + 2)
    tp[-1] = 1
    fp[-1] = 1
    for i in range(1, n_fix + 1):
        thresh = allthreshes[i - 1]
        aboveth = np.sum(s_flat >= thresh)
        tp[i] = i / n_fix
        fp[i] = (aboveth - i) / (n_pix - n_fix)
    return np.trapezoid(tp, fp)


# --- AUC-Judd -----------------------------------------------------------------

MAP_2X2 = np.array([[4.0, 3.0], [2.0, 1.0]])  # min-max: [[1, 2/3], [1/3, 0]]


@pytest.mark.parametrize("jitter", [False, True])
@pytest.mark.parametrize(
    "pixels, expected",
    [
        ([(0, 0)], 1.0),  # perfect: fixation on the maximum
        ([(0, 1)], 5.0 / 6.0),  # tp 1 at fp 1/3: 1/6 + 2/3
        ([(1, 1)], 0.5),  # on the minimum: MIT's curve cannot go below 0.5
        ([(0, 0), (1, 0)], 0.875),  # (0,.5), (.5,1): above Mann-Whitney's 0.75
    ],
)
def test_auc_judd_hand_worked(pixels, expected, jitter):
    fixations = _binary((2, 2), *pixels)
    assert saliency.auc_judd(MAP_2X2, fixations, jitter=jitter) == pytest.approx(
        expected, abs=1e-6
    )


@pytest.mark.parametrize("seed", range(6))
def test_auc_judd_matches_reference_loop_with_ties(seed):
    rng = np.random.default_rng(seed)
    shape = (7, 9)
    s_map = rng.integers(0, 4, size=shape).astype(np.float64)  # many ties
    fixations = (rng.random(shape) < 0.2).astype(np.float32)
    fixations[0, 0] = 1
    fixations[-1, -1] = 0
    expected = reference_auc_judd_loop(s_map, fixations)
    assert saliency.auc_judd(s_map, fixations, jitter=False) == pytest.approx(
        expected, abs=1e-12
    )
    noise = np.random.default_rng(seed).random(shape) * 1e-7
    assert saliency.auc_judd(s_map, fixations, seed=seed) == pytest.approx(
        reference_auc_judd_loop(s_map, fixations, noise), abs=1e-12
    )


def test_auc_judd_invariant_to_scale_and_monotone_transforms():
    rng = np.random.default_rng(3)
    s_map = rng.random((12, 10))
    fixations = (rng.random((12, 10)) < 0.15).astype(np.float32)
    base = saliency.auc_judd(s_map, fixations, jitter=False)
    assert saliency.auc_judd(1e-6 * s_map, fixations, jitter=False) == base
    assert saliency.auc_judd(np.exp(5 * s_map), fixations, jitter=False) == base
    # With jitter the noise is relative to the map's range, so scale is moot.
    jittered = saliency.auc_judd(s_map, fixations)
    assert saliency.auc_judd(1e-6 * s_map, fixations) == pytest.approx(jittered)


def test_auc_judd_constant_map():
    fixations = _binary((4, 4), (1, 1), (2, 3))
    assert saliency.auc_judd(np.ones((4, 4)), fixations, jitter=False) == 0.5
    # Jitter turns a constant map into noise: chance level, up to the MIT
    # curve's optimism with few fixations (one fixation averages 0.75).
    fixations = (np.random.default_rng(99).random((20, 20)) < 0.25).astype(np.float32)
    scores = [
        saliency.auc_judd(np.ones((20, 20)), fixations, seed=s) for s in range(20)
    ]
    assert np.mean(scores) == pytest.approx(0.5, abs=0.03)
    one = _binary((20, 20), (4, 4))
    scores = [saliency.auc_judd(np.ones((20, 20)), one, seed=s) for s in range(200)]
    assert np.mean(scores) == pytest.approx(0.75, abs=0.05)


def test_auc_judd_degenerate_inputs_raise():
    with pytest.raises(ValueError, match="no fixated pixel"):
        saliency.auc_judd(MAP_2X2, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="every pixel is fixated"):
        saliency.auc_judd(MAP_2X2, np.ones((2, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        saliency.auc_judd(-MAP_2X2, _binary((2, 2), (0, 0)))
    with pytest.raises(ValueError, match="NaN"):
        saliency.auc_judd(np.full((2, 2), np.nan), _binary((2, 2), (0, 0)))


def test_auc_judd_resizes_prediction_to_fixation_map():
    rng = np.random.default_rng(0)
    small = rng.random((6, 8)) + 1.0  # cubic overshoot stays positive
    fixations = (rng.random((12, 16)) < 0.1).astype(np.float32)
    upsampled = cv2.resize(small, (16, 12), interpolation=cv2.INTER_CUBIC)
    assert saliency.auc_judd(small[..., None], fixations, jitter=False) == (
        saliency.auc_judd(upsampled, fixations, jitter=False)
    )


def test_auc_judd_on_640x480_equals_the_reference_loop():
    """Real-size maps go through the vectorised path (its speed is measured by
    `python experiments/metric_timing.py`, not asserted here): same value as
    the transcription of MIT's loop kept there."""
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "experiments"))
    from metric_timing import _reference_auc_judd_loop

    rng = np.random.default_rng(0)
    s_map = rng.random((480, 640))
    fixations = (rng.random((480, 640)) < 0.001).astype(np.float32)
    assert saliency.auc_judd(s_map, fixations, jitter=False) == pytest.approx(
        _reference_auc_judd_loop(s_map, fixations), abs=1e-12
    )


# --- AUC-Borji and shuffled AUC ---------------------------------------------------


def test_auc_borji_hand_worked():
    # Negatives hit the fixated pixel (value 1: AUC 0.5) or the other (0: AUC 1)
    # with probability 1/2 each: expected 0.75.
    s_map = np.array([[1.0, 0.0]])
    fixations = _binary((1, 2), (0, 0))
    score = saliency.auc_borji(s_map, fixations, n_splits=4000, seed=1)
    assert score == pytest.approx(0.75, abs=0.02)
    assert saliency.auc_borji(s_map, fixations, seed=5) == saliency.auc_borji(
        s_map, fixations, seed=5
    )


def test_auc_borji_constant_and_inverted_maps():
    rng = np.random.default_rng(0)
    fixations = (rng.random((20, 20)) < 0.05).astype(np.float32)
    assert saliency.auc_borji(np.full((20, 20), 3.0), fixations) == 0.5
    perfect = fixations + 0.0
    inverted = 1.0 - fixations
    # Binary maps, hand-worked: a share f of the uniform negatives lands on a
    # fixation. Perfect map: the curve is (0, 0), (f, 1), (1, 1), area 1 - f/2.
    # Inverted: (0, 0), (1 - f, 0), (1, 1), area f/2. With 18 fixations x 100
    # splits the sampled share has sd 0.005, so the area's sd is 0.0025.
    f = fixations.mean()
    assert saliency.auc_borji(perfect, fixations) == pytest.approx(1 - f / 2, abs=0.015)
    assert saliency.auc_borji(inverted, fixations) == pytest.approx(f / 2, abs=0.015)
    assert saliency.auc_borji(7 * perfect, fixations) == saliency.auc_borji(
        perfect, fixations
    )


@pytest.mark.parametrize(
    "other_pixel, expected",
    [((0, 1), 1.0), ((0, 0), 0.5), ((0, 2), 1.0)],
)
def test_auc_shuffled_hand_worked(other_pixel, expected):
    s_map = np.array([[1.0, 0.0, 0.5]])
    fixations = _binary((1, 3), (0, 0))
    other = _binary((1, 3), other_pixel)
    assert saliency.auc_shuffled(s_map, fixations, other, n_splits=3) == expected


def test_auc_shuffled_gives_centre_bias_chance():
    # Fixations on this and other images at the centre: a centre map earns 0.5.
    yy, xx = np.mgrid[:21, :21]
    centre = np.exp(-((yy - 10) ** 2 + (xx - 10) ** 2) / 20.0)
    fixations = _binary((21, 21), (10, 10), (9, 10))
    other = _binary((21, 21), (10, 10), (9, 10), (10, 9))
    score = saliency.auc_shuffled(centre, fixations, other)
    # Hand-worked: min-max values are 1 at (10, 10) and 0.951 at the two others.
    # Each split draws 2 of the 3 other fixations: {1, 0.951} (p = 2/3) gives
    # the diagonal, area 0.5; {0.951, 0.951} (p = 1/3) gives (0, 0), (0, 0.5),
    # (1, 1), area 0.75. Mean 7/12 over 100 splits (sd 0.012): near chance,
    # far below what the same map earns against uniform negatives (AUC-Judd).
    assert score == pytest.approx(7 / 12, abs=0.04)
    assert saliency.auc_judd(centre, fixations) > 0.99


def test_auc_shuffled_needs_other_fixations():
    with pytest.raises(ValueError, match="other_fixations has no fixated pixel"):
        saliency.auc_shuffled(MAP_2X2, _binary((2, 2), (0, 0)), np.zeros((2, 2)))


# --- NSS, IG --------------------------------------------------------------------


def test_nss_hand_worked():
    s_map = np.array([[0.0, 0.0], [0.0, 4.0]])  # mean 1, std (N-1) 2
    assert saliency.nss(s_map, _binary((2, 2), (1, 1))) == pytest.approx(1.5)
    assert saliency.nss(s_map, _binary((2, 2), (0, 0))) == pytest.approx(-0.5)
    both = _binary((2, 2), (0, 0), (1, 1))
    assert saliency.nss(s_map, both) == pytest.approx(0.5)
    assert saliency.nss(1e-5 * s_map, both) == pytest.approx(0.5)
    assert saliency.nss(np.full((2, 2), 9.0), both) == 0.0
    with pytest.raises(ValueError, match="no fixated pixel"):
        saliency.nss(s_map, np.zeros((2, 2)))


def test_information_gain_hand_worked():
    s_map = np.array([[3.0, 1.0, 1.0, 1.0]])
    fixations = _binary((1, 4), (0, 0))
    uniform = np.ones((1, 4))
    # MIT: min-max gives [1, 0, 0, 0]; log2(1) - log2(1/4) = 2 bits.
    assert saliency.information_gain(s_map, fixations, uniform) == pytest.approx(2.0)
    # As a density: [1/2, 1/6, 1/6, 1/6]; log2(1/2) - log2(1/4) = 1 bit.
    assert saliency.information_gain(
        s_map, fixations, uniform, normalization="sum"
    ) == pytest.approx(1.0)
    # A fixation on the min-maxed zero costs log2(eps) - log2(1/4) = -50 bits.
    missed = saliency.information_gain(s_map, _binary((1, 4), (0, 1)), uniform)
    assert missed == pytest.approx(np.log2(EPS) + 2.0)
    assert saliency.information_gain(s_map, fixations, s_map) == 0.0
    assert saliency.information_gain(5 * s_map, fixations, uniform) == pytest.approx(
        2.0
    )
    with pytest.raises(ValueError, match="normalization"):
        saliency.information_gain(s_map, fixations, uniform, normalization="x")


# --- CC, KLD, SIM ---------------------------------------------------------------


def test_cc_hand_worked():
    truth = np.array([[2.0, 4.0], [6.0, 8.0]])
    assert saliency.cc(np.array([[1.0, 2.0], [3.0, 4.0]]), truth) == pytest.approx(1.0)
    assert saliency.cc(np.array([[4.0, 3.0], [2.0, 1.0]]), truth) == pytest.approx(-1)
    shifted = saliency.cc(
        np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[0.0, 1.0], [0.0, 0.0]])
    )
    assert shifted == pytest.approx(-1.0 / 3.0)
    assert saliency.cc(np.ones((2, 2)), truth) == 0.0
    with pytest.raises(ValueError, match="constant"):
        saliency.cc(truth, np.ones((2, 2)))
    with pytest.raises(ValueError, match="all zeros"):
        saliency.cc(truth, np.zeros((2, 2)))


def test_kld_hand_worked():
    truth = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert saliency.kld(truth, truth) == pytest.approx(0.0, abs=1e-12)
    assert saliency.kld(7 * truth, truth) == pytest.approx(0.0, abs=1e-12)
    assert saliency.kld(np.ones((2, 2)), truth) == pytest.approx(np.log(2.0))
    # All mass where the truth has none: log(0.5 / eps) per half.
    expected_miss = np.log(EPS + 0.5 / EPS)
    assert saliency.kld(np.array([[0.0, 0.0], [1.0, 1.0]]), truth) == pytest.approx(
        expected_miss
    )
    assert saliency.kld(np.zeros((2, 2)), truth) == pytest.approx(expected_miss)
    with pytest.raises(ValueError, match="all zeros"):
        saliency.kld(truth, np.zeros((2, 2)))


def test_sim_hand_worked():
    truth = np.array([[1.0, 1.0], [0.0, 0.0]])  # -> [.5, .5, 0, 0]
    assert saliency.sim(truth, truth) == pytest.approx(1.0)
    assert saliency.sim(3 * truth + 0, truth) == pytest.approx(1.0)
    # Min-max first (MIT): [2,1,1,1] -> [1,0,0,0]; pysaliency would give 0.6.
    assert saliency.sim(np.array([[2.0, 1.0], [1.0, 1.0]]), truth) == pytest.approx(0.5)
    assert saliency.sim(np.ones((2, 2)), truth) == pytest.approx(0.5)
    assert saliency.sim(np.array([[0.0, 0.0], [1.0, 1.0]]), truth) == 0.0
    assert saliency.sim(np.zeros((2, 2)), truth) == 0.0


def test_distribution_metrics_upsample_prediction_not_truth():
    yy, xx = np.mgrid[:32, :48]
    truth = np.exp(-((yy - 16) ** 2 + (xx - 24) ** 2) / 50.0)
    small = cv2.resize(truth, (24, 16), interpolation=cv2.INTER_AREA)
    assert saliency.cc(small, truth) > 0.99
    assert saliency.kld(small, truth) < 0.01
    assert saliency.sim(small, truth) > 0.95
    upsampled = np.maximum(
        cv2.resize(small, (48, 32), interpolation=cv2.INTER_CUBIC), 0
    )
    assert saliency.kld(small, truth) == pytest.approx(saliency.kld(upsampled, truth))


def test_fixation_points_to_map_wraps_shared_helper():
    points = np.array([[0.4, 1.6], [2.0, 0.0], [2.0, 0.0]], np.float32)
    expected = _binary((3, 3), (0, 2), (2, 0))
    np.testing.assert_array_equal(
        saliency.fixation_points_to_map(points, (3, 3)), expected
    )


def test_constant_predictions_score_chance():
    fixations = _binary((1, 3), (0, 0))
    other = _binary((1, 3), (0, 1))
    flat = np.full((1, 3), 2.0)
    assert saliency.auc_shuffled(flat, fixations, other) == 0.5
    assert saliency.nss(flat, fixations) == 0.0
    # A uniform density at OSIE's size: its rounded mean leaves a std of
    # ~4e-22, which NSS once turned into -1.0 instead of chance.
    uniform = np.full((600, 800), 1.0)
    uniform /= uniform.sum()
    assert uniform.std(ddof=1) > 0
    big = np.zeros((600, 800), np.float32)
    big[0, 0] = 1.0
    assert saliency.nss(uniform, big) == 0.0
    assert saliency.information_gain(flat, fixations, np.ones((1, 1))) == 0.0
    assert (
        saliency.information_gain(
            np.zeros((1, 3)), fixations, np.ones((1, 1)), normalization="min_max"
        )
        == 0.0
    )
    with pytest.raises(ValueError, match="saliency_map is all zeros"):
        saliency.information_gain(
            np.zeros((1, 3)), fixations, np.ones((1, 1)), normalization="sum"
        )


def test_metric_timing_script_prints_every_metric():
    """`experiments/metric_timing.py` runs (it once called a helper that had
    been renamed): one table row per metric, each value in its metric's range."""
    import pathlib
    import sys

    from conftest import fork_run

    script = (
        pathlib.Path(__file__).resolve().parents[2] / "experiments" / "metric_timing.py"
    )
    # `python metric_timing.py ...`, forked from conftest's fork server.
    result = fork_run(
        [sys.executable, str(script), "--repeats=1", "--fixations=40"], timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [
        line.split(" | ")
        for line in result.stdout.splitlines()
        if line.startswith("| ")
    ]
    values = {row[0][2:]: float(row[1]) for row in rows[2:]}
    assert len(values) == 9
    for name in ("auc_judd", "auc_borji (100 splits)", "auc_shuffled (100 splits)"):
        assert 0.5 < values[name] <= 1.0, name
    assert 0.0 < values["sim"] <= 1.0 and -1.0 <= values["cc"] <= 1.0
    assert values["nss"] > 0 and values["kld"] > 0
