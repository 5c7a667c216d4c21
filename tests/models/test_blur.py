"""Tests for aesthal.models.blur.GaussianBlur against hand-worked values and scipy."""

import keras
import numpy as np
import pytest
from scipy import ndimage

from aesthal.models.blur import GaussianBlur


def test_impulse_gives_the_normalised_kernel():
    # sigma 1, truncate 3: radius 3, weights exp(-x^2 / 2) at x = 0..3.
    w = np.array([1.0, np.exp(-0.5), np.exp(-2.0), np.exp(-4.5)])
    total = w[0] + 2 * w[1:].sum()  # 2.50595 (sqrt(2 pi) untruncated)
    image = np.zeros((1, 1, 9, 1), np.float32)
    image[0, 0, 4, 0] = 1.0
    # One row: the vertical pass repeats the edge row, so it changes nothing.
    out = np.asarray(GaussianBlur(1.0)(image))[0, 0, :, 0]
    expected = np.array([0, w[3], w[2], w[1], w[0], w[1], w[2], w[3], 0]) / total
    np.testing.assert_allclose(out, expected, atol=1e-7)
    assert total == pytest.approx(2.50595, abs=1e-5)


def test_constant_map_stays_constant_at_the_borders():
    image = np.full((2, 5, 7, 1), -3.25, np.float32)
    np.testing.assert_allclose(GaussianBlur(2.0)(image), image, atol=1e-5)


@pytest.mark.parametrize("sigma", [0.7, 1.0, 1.5, 2.3])
def test_matches_scipy_gaussian_filter_nearest(sigma):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 11, 13, 2)).astype(np.float32)
    layer = GaussianBlur(sigma, truncate=3.0)
    out = np.asarray(layer(image))
    assert layer.radius == int(np.ceil(3.0 * sigma))
    for b in range(2):
        for c in range(2):
            reference = ndimage.gaussian_filter(
                image[b, :, :, c].astype(np.float64),
                sigma,
                mode="nearest",
                radius=layer.radius,
            )
            np.testing.assert_allclose(out[b, :, :, c], reference, atol=1e-5)


def test_learned_sigma_is_a_positive_trainable_weight_clipped_at_max():
    layer = GaussianBlur(1.0, learned=True, max_sigma=1.5)
    layer.build((None, 8, 8, 1))
    assert [w.name for w in layer.trainable_weights] == ["log_sigma"]
    assert float(layer.current_sigma()) == pytest.approx(1.0)
    layer.log_sigma.assign(np.log(3.0))
    assert float(layer.current_sigma()) == pytest.approx(1.5)
    assert layer.radius == 5  # ceil(3 * 1.5)


def test_fixed_blur_has_no_weights():
    layer = GaussianBlur(1.0)
    layer.build((None, 8, 8, 1))
    assert layer.weights == []


def test_bad_sigma_names_the_problem():
    with pytest.raises(ValueError, match="sigma must be > 0"):
        GaussianBlur(0.0)
    with pytest.raises(ValueError, match="max_sigma"):
        GaussianBlur(2.0, max_sigma=1.0)


def test_config_round_trip_and_keras_save_load(tmp_path):
    inputs = keras.Input((6, 8, 1))
    model = keras.Model(inputs, GaussianBlur(1.2, learned=True, name="blur")(inputs))
    model.get_layer("blur").log_sigma.assign(np.log(0.9))
    config = model.get_layer("blur").get_config()
    clone = GaussianBlur.from_config(config)
    assert clone.get_config() == config
    path = str(tmp_path / "blur.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(1).normal(size=(2, 6, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


def test_fit_step_moves_sigma_towards_the_target_blur():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 12, 12, 1)).astype(np.float32)
    y = np.stack(
        [
            ndimage.gaussian_filter(m[..., 0], 2.0, mode="nearest", truncate=3.0)
            for m in x
        ]
    )[..., None].astype(np.float32)
    inputs = keras.Input((12, 12, 1))
    layer = GaussianBlur(1.0, learned=True, max_sigma=3.0)
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    before = float(layer.current_sigma())
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert float(layer.current_sigma()) > before
