"""Tests of the pure preprocessing functions in aesthal.data.preprocess."""

import numpy as np
import pytest
import tensorflow as tf

from aesthal import data


def _preprocess(example, image_size, flip=False, source_name="source"):
    """standardize, resize, flip: the order the training pipeline applies them."""
    features = data.standardize_example(example, source_name)
    return data.flip_example(data.resize_example(features, image_size), flip)


def _example(h=32, w=48, peak=(10, 30), sigma=2.0, seed=0):
    """An image with a bright blob, a map with its peak there, and the point."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:h, 0:w]
    blob = np.exp(-((rows - peak[0]) ** 2 + (cols - peak[1]) ** 2) / (2 * sigma**2))
    image = (rng.uniform(0, 60, (h, w, 3)) + 190 * blob[..., None]).astype(np.uint8)
    return {
        "image": tf.constant(image),
        "image/filename": tf.constant("blob.png"),
        "has_saliency": tf.constant(True),
        "has_aesthetics": tf.constant(True),
        "fixation_map": tf.constant(
            np.round(blob * 65535).astype(np.uint16)[..., None]
        ),
        "fixations": tf.constant([[peak[0], peak[1]], [3.0, 4.0]], tf.float32),
        "aesthetics_votes": tf.constant(np.arange(1, 11), tf.int32),
    }


def _argmax2d(a):
    return np.unravel_index(np.argmax(a), a.shape)


@pytest.mark.parametrize("flip", [False, True])
def test_eager_equals_dataset_map(flip):
    ex = _example()
    eager = _preprocess(ex, (24, 40), flip=flip)
    ds = tf.data.Dataset.from_tensors(ex).map(
        lambda e: _preprocess(e, (24, 40), flip=tf.constant(flip))
    )
    mapped = next(iter(ds))
    assert set(eager) == set(mapped)
    for key in eager:
        np.testing.assert_allclose(eager[key].numpy(), mapped[key].numpy(), rtol=1e-6)


def test_shapes_dtypes_and_targets():
    out = _preprocess(_example(), (24, 40))
    assert out["image"].shape == (24, 40, 3) and out["image"].dtype == tf.float32
    assert 0 <= float(tf.reduce_min(out["image"])) <= float(tf.reduce_max(out["image"]))
    assert float(tf.reduce_max(out["image"])) <= 255
    assert out["saliency"].shape == (24, 40, 1) and out["saliency"].dtype == tf.float32
    assert float(tf.reduce_sum(out["saliency"])) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(out["aesthetics"].numpy(), np.arange(1, 11))
    assert float(out["saliency_mask"]) == 1.0 and float(out["aesthetics_mask"]) == 1.0


def test_same_size_skips_the_resize_with_the_same_result():
    """At the model size the (skipped) resize is the identity: image and
    density come through unchanged; an unknown static size takes the resize
    path and gives the same values."""
    ex = data.standardize_example(_example())
    direct = data.resize_example(ex, (32, 48))
    np.testing.assert_array_equal(
        direct["image"].numpy(), ex["image"].numpy().astype(np.float32)
    )
    density = ex["fixation_map"].numpy() / ex["fixation_map"].numpy().sum()
    np.testing.assert_allclose(direct["saliency"].numpy(), density, rtol=1e-6)
    unknown = tf.TensorSpec([None, None, 3], tf.uint8)
    traced = tf.function(
        lambda image: data.resize_example(dict(ex, image=image), (32, 48))["image"],
        input_signature=[unknown],
    )
    # Exact: a bilinear resize to the same size with half-pixel centres samples
    # every pixel at its own centre (weights 1 and 0).
    np.testing.assert_array_equal(traced(ex["image"]).numpy(), direct["image"].numpy())


def test_resize_preserves_mass_and_where_it_lies():
    h, w = 32, 48
    m = np.zeros((h, w, 1), np.float32)
    m[:16, :24] = 1.0  # top-left quadrant: 3/4 of the mass
    m[16:, 24:] = 1.0 / 3.0  # bottom-right quadrant: 1/4
    ex = {
        "image": tf.zeros((h, w, 3), tf.uint8),
        "fixation_map": tf.constant(m * 1000.0),  # any scale
    }
    for size in [(16, 24), (20, 30), (64, 96)]:
        out = _preprocess(ex, size)["saliency"].numpy()[..., 0]
        assert out.sum() == pytest.approx(1.0, abs=1e-5)
        assert out.min() >= 0
        hh, ww = size[0] // 2, size[1] // 2
        # Only the boundary rows/columns blur across quadrants.
        assert out[:hh, :ww].sum() == pytest.approx(0.75, abs=0.05)
        assert out[hh:, ww:].sum() == pytest.approx(0.25, abs=0.05)
    uniform = {
        "image": tf.zeros((h, w, 3), tf.uint8),
        "fixation_map": tf.ones((h, w, 1)),
    }
    out = _preprocess(uniform, (20, 30))["saliency"].numpy()
    np.testing.assert_allclose(out, 1.0 / 600.0, rtol=1e-5)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("size", [(32, 48), (48, 72), (16, 40)])
def test_flip_keeps_image_map_and_points_aligned(flip, size):
    peak = (10, 30)
    out = _preprocess(_example(peak=peak), size, flip=flip)
    image_peak = np.array(_argmax2d(out["image"].numpy().sum(-1)))
    map_peak = np.array(_argmax2d(out["saliency"].numpy()[..., 0]))
    point = out["fixations"].numpy()[0]
    # Hand-worked: stretch with pixel centres, then mirror the column.
    expected_row = (peak[0] + 0.5) * size[0] / 32 - 0.5
    expected_col = (peak[1] + 0.5) * size[1] / 48 - 0.5
    if flip:
        expected_col = size[1] - 1 - expected_col
    np.testing.assert_allclose(point, [expected_row, expected_col], rtol=1e-5)
    assert np.all(np.abs(map_peak - point) <= 1.0)
    assert np.all(np.abs(image_peak - point) <= 1.0)


def test_flip_is_an_involution_and_mirrors():
    out = _preprocess(_example(), (24, 40))
    once = data.flip_example(out, tf.constant(True))
    twice = data.flip_example(once, tf.constant(True))
    for key in ("image", "saliency", "fixations"):
        np.testing.assert_allclose(twice[key].numpy(), out[key].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(once["image"].numpy(), out["image"].numpy()[:, ::-1])


def test_missing_features_are_zeros_with_mask_zero():
    ex = {"image": tf.zeros((8, 8, 1), tf.uint8)}  # grayscale, no labels
    out = _preprocess(ex, (4, 4))
    assert out["image"].shape == (4, 4, 3)
    assert float(out["saliency_mask"]) == 0.0 and float(out["aesthetics_mask"]) == 0.0
    assert float(tf.reduce_sum(out["saliency"])) == 0.0
    assert float(tf.reduce_sum(out["aesthetics"])) == 0.0
    assert out["fixations"].shape == (0, 2)


def test_unlabelled_map_is_zeroed():
    ex = dict(_example(), has_saliency=tf.constant(False))
    out = _preprocess(ex, (24, 40))
    assert float(tf.reduce_sum(out["saliency"])) == 0.0
    assert float(out["saliency_mask"]) == 0.0


def test_bad_targets_fail_with_a_clear_message():
    bad_map = dict(_example(), fixation_map=tf.fill((32, 48, 1), float("nan")))
    with pytest.raises(tf.errors.InvalidArgumentError, match="fixation_map has NaN"):
        _preprocess(bad_map, (24, 40), source_name="mysrc")
    zero_map = dict(_example(), fixation_map=tf.zeros((32, 48, 1), tf.uint16))
    with pytest.raises(tf.errors.InvalidArgumentError, match="all zeros"):
        _preprocess(zero_map, (24, 40))
    neg_votes = dict(_example(), aesthetics_votes=tf.constant([-1] + [1] * 9))
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="aesthetics_votes are neg"
    ):
        _preprocess(neg_votes, (24, 40))
    wrong_size = dict(_example(), fixation_map=tf.ones((16, 48, 1), tf.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="size differs"):
        _preprocess(wrong_size, (24, 40))
    rgba = dict(_example(), image=tf.zeros((32, 48, 4), tf.uint8))
    with pytest.raises(ValueError, match="mysrc: image has 4 channels"):
        _preprocess(rgba, (24, 40), source_name="mysrc")
    # Inside tf.data the same checks fire.
    ds = tf.data.Dataset.from_tensors(bad_map).map(
        lambda e: _preprocess(e, (24, 40), source_name="mysrc")
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="mysrc: fixation_map"):
        next(iter(ds))
