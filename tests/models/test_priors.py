"""Tests for aesthal.models.priors: the centre-bias log-density and its layer."""

import keras
import numpy as np
import pytest

from aesthal.models.priors import CentreBiasPrior, centre_bias_log_density


def test_log_density_of_points_in_one_cell_hand_worked():
    # A 1x3 grid, every point in the middle cell: the blur (sigma 0.15 cells)
    # leaves [e, 1, e] with e ~ 2e-10, min-max gives [0, 1, 0]; a uniform
    # weight of 0.3 gives [0.1, 0.8, 0.1].
    points = np.array([[10.0, 40.0], [20.0, 50.0]])
    log_density = centre_bias_log_density(
        [(points, (30, 90))], grid_shape=(1, 3), uniform_weight=0.3
    )
    np.testing.assert_allclose(
        log_density, np.log([[0.1, 0.8, 0.1]]), rtol=1e-6, atol=1e-6
    )
    assert log_density.dtype == np.float32


def test_log_density_is_normalised_and_finite():
    rng = np.random.default_rng(0)
    points = rng.normal([300, 400], [80, 120], size=(500, 2))
    log_density = centre_bias_log_density([(points, (600, 800))], grid_shape=(6, 8))
    assert np.all(np.isfinite(log_density))
    assert np.exp(log_density.astype(np.float64)).sum() == pytest.approx(1.0, abs=1e-5)
    assert np.unravel_index(np.argmax(log_density), (6, 8)) in [
        (2, 3),
        (2, 4),
        (3, 3),
        (3, 4),
    ]


def test_zero_uniform_weight_is_refused():
    with pytest.raises(ValueError, match="log of 0"):
        centre_bias_log_density([(np.zeros((1, 2)), (4, 4))], uniform_weight=0.0)


def test_fixed_prior_on_zero_logits_gives_the_prior_back():
    prior = np.log(np.array([[0.1, 0.8, 0.1]], np.float32))
    layer = CentreBiasPrior(log_prior=prior)
    out = np.asarray(layer(np.zeros((2, 1, 3, 1), np.float32)))
    np.testing.assert_allclose(
        out[..., 0], np.broadcast_to(prior, (2, 1, 3)), rtol=1e-6
    )
    assert layer.trainable_weights == []
    assert [w.name for w in layer.non_trainable_weights] == ["log_prior"]


def test_prior_is_resized_bilinearly_to_the_logits():
    # Half-pixel centres, 2 -> 4: [a, b] -> [a, .75a + .25b, .25a + .75b, b].
    prior = np.array([[0.0, -4.0], [0.0, -4.0]], np.float32)
    out = np.asarray(
        CentreBiasPrior(log_prior=prior)(np.ones((1, 4, 4, 1), np.float32))
    )
    np.testing.assert_allclose(
        out[0, :, :, 0], np.tile([1.0, 0.0, -2.0, -3.0], (4, 1)), atol=1e-6
    )


def test_bad_prior_names_the_problem():
    with pytest.raises(ValueError, match="finite"):
        CentreBiasPrior(log_prior=np.array([[0.0, -np.inf]]))
    with pytest.raises(ValueError, match="differs"):
        CentreBiasPrior(grid_shape=(2, 2), log_prior=np.zeros((1, 3)))
    with pytest.raises(ValueError, match="grid_shape or log_prior"):
        CentreBiasPrior()


@pytest.mark.parametrize("learned", [False, True])
def test_keras_save_load_keeps_the_map(learned, tmp_path):
    prior = np.log(np.array([[0.1, 0.2], [0.3, 0.4]], np.float32))
    inputs = keras.Input((4, 6, 1))
    layer = CentreBiasPrior(log_prior=prior, learned=learned, name="prior")
    model = keras.Model(inputs, layer(inputs))
    config = layer.get_config()
    assert config["grid_shape"] == [2, 2] and config["learned"] is learned
    assert CentreBiasPrior.from_config(config).get_config() == config
    path = str(tmp_path / "prior.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(
        loaded.get_layer("prior").log_prior.numpy(), prior, rtol=1e-6
    )
    x = np.zeros((1, 4, 6, 1), np.float32)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


def test_learned_prior_moves_in_a_fit_step_and_fixed_does_not():
    x = np.zeros((2, 2, 2, 1), np.float32)
    y = np.array([[[1.0], [0.0]], [[0.0], [0.0]]], np.float32)[None].repeat(2, 0)
    for learned in (False, True):
        inputs = keras.Input((2, 2, 1))
        layer = CentreBiasPrior(grid_shape=(2, 2), learned=learned)
        model = keras.Model(inputs, layer(inputs))
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
        model.fit(x, y, epochs=1, batch_size=2, verbose=0)
        values = layer.log_prior.numpy()
        if learned:
            # d mse / d prior[0, 0] = 2 * (0 - 1) / 4: one SGD step of 1.0 gives 0.5.
            np.testing.assert_allclose(values, [[0.5, 0.0], [0.0, 0.0]], atol=1e-6)
        else:
            np.testing.assert_array_equal(values, np.zeros((2, 2)))
