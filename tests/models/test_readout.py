"""Tests for aesthal.models.readout.Readout (DeepGaze II readout)."""

import keras
import numpy as np
import pytest
from scipy import ndimage, special

from aesthal.models.readout import Readout


def _softplus(x):
    return np.logaddexp(0.0, x)


def test_no_hidden_layer_hand_worked_log_softmax_with_prior():
    # One channel [0, log 3], kernel 1: log-softmax gives [log .25, log .75];
    # a prior of [log 3, 0] makes both logits log 3: [log .5, log .5].
    features = {"t": np.array([[[[0.0], [np.log(3.0)]]]], np.float32)}
    readout = Readout(["t"], (1, 2), hidden_channels=())
    readout.build({"t": (None, 1, 2, 1)})
    readout.logits.kernel.assign(np.ones((1, 1, 1, 1), np.float32))
    np.testing.assert_allclose(
        np.asarray(readout(features))[0, 0, :, 0], np.log([0.25, 0.75]), rtol=1e-6
    )
    with_prior = Readout(
        ["t"], (1, 2), hidden_channels=(), log_prior=np.log([[3.0, 1.0]])
    )
    with_prior.build({"t": (None, 1, 2, 1)})
    with_prior.logits.kernel.assign(np.ones((1, 1, 1, 1), np.float32))
    np.testing.assert_allclose(
        np.asarray(with_prior(features))[0, 0, :, 0], np.log([0.5, 0.5]), rtol=1e-6
    )


def test_matches_a_numpy_reference_of_concat_1x1_softplus_blur_prior():
    rng = np.random.default_rng(0)
    features = {
        "a": rng.normal(size=(2, 6, 8, 3)).astype(np.float32),
        "b": rng.normal(size=(2, 6, 8, 5)).astype(np.float32),
    }
    log_prior = rng.normal(size=(6, 8)).astype(np.float32)
    readout = Readout(
        ["a", "b"], (6, 8), hidden_channels=(4, 2), blur_sigma=1.0, log_prior=log_prior
    )
    out = np.asarray(readout(features))

    x = np.concatenate([features["a"], features["b"]], axis=-1).astype(np.float64)
    for conv in readout.hidden:
        kernel, bias = (np.asarray(w) for w in conv.weights)
        x = _softplus(np.einsum("bhwc,cd->bhwd", x, kernel[0, 0]) + bias)
    logits = np.einsum("bhwc,cd->bhwd", x, np.asarray(readout.logits.kernel)[0, 0])[
        ..., 0
    ]
    logits = np.stack(
        [ndimage.gaussian_filter(m, 1.0, mode="nearest", truncate=3.0) for m in logits]
    )
    logits = logits + log_prior
    flat = logits.reshape(2, -1)
    expected = (flat - special.logsumexp(flat, axis=1, keepdims=True)).reshape(2, 6, 8)
    np.testing.assert_allclose(out[..., 0], expected, atol=1e-5)


def test_taps_are_resized_to_the_largest_and_output_is_a_log_density():
    rng = np.random.default_rng(1)
    features = {
        "deep": rng.normal(size=(3, 2, 3, 4)).astype(np.float32),
        "shallow": rng.normal(size=(3, 4, 6, 2)).astype(np.float32),
        "unused": np.zeros((3, 1, 1, 1), np.float32),
    }
    readout = Readout(["deep", "shallow"], (8, 12), layer_norm=True, blur_sigma=0.8)
    out = np.asarray(readout(features))
    assert out.shape == (3, 8, 12, 1) and out.dtype == np.float32
    assert readout._readout_hw == (4, 6)
    assert readout.hidden[0].kernel.shape == (1, 1, 6, 16)
    np.testing.assert_allclose(
        special.logsumexp(out.reshape(3, -1), axis=1), 0.0, atol=1e-5
    )


def test_missing_tap_names_the_available_ones():
    with pytest.raises(ValueError, match=r"\['block9'\].*\['block4'\]"):
        Readout(["block9"], (4, 4))({"block4": np.zeros((1, 2, 2, 1), np.float32)})


def _model(log_prior):
    inputs = {
        "b4": keras.Input((4, 6, 3), name="b4"),
        "b5": keras.Input((2, 3, 5), name="b5"),
    }
    readout = Readout(
        ["b4", "b5"],
        (8, 12),
        hidden_channels=(4, 2),
        layer_norm=True,
        blur_sigma=1.0,
        learn_blur=True,
        log_prior=log_prior,
        learn_prior=True,
        name="readout",
    )
    return keras.Model(inputs, readout(inputs)), readout


def test_config_round_trip_and_keras_save_load(tmp_path):
    rng = np.random.default_rng(2)
    log_prior = rng.normal(size=(3, 4)).astype(np.float32)
    model, readout = _model(log_prior)
    config = readout.get_config()
    assert config["prior_grid"] == [3, 4] and "log_prior" not in config
    assert Readout.from_config(config).get_config() == config
    path = str(tmp_path / "readout.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    x = {
        "b4": rng.normal(size=(2, 4, 6, 3)).astype(np.float32),
        "b5": rng.normal(size=(2, 2, 3, 5)).astype(np.float32),
    }
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-5)
    np.testing.assert_allclose(
        loaded.get_layer("readout").prior.log_prior.numpy(), log_prior, rtol=1e-6
    )


def test_fit_step_on_fixation_log_likelihood_trains_every_part():
    rng = np.random.default_rng(3)
    model, readout = _model(np.zeros((3, 4), np.float32))
    x = {
        "b4": rng.normal(size=(4, 4, 6, 3)).astype(np.float32),
        "b5": rng.normal(size=(4, 2, 3, 5)).astype(np.float32),
    }
    counts = np.zeros((4, 8, 12, 1), np.float32)
    counts[:, 2, 3, 0] = 1.0

    def nll(y_true, log_density):  # negative mean log-density at fixations
        return -keras.ops.sum(y_true * log_density) / keras.ops.sum(y_true)

    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=nll)
    names = sorted(v.path for v in readout.trainable_variables)
    assert any("log_sigma" in n for n in names) and any("log_prior" in n for n in names)
    before = [v.numpy().copy() for v in readout.trainable_variables]
    first = model.evaluate(x, counts, verbose=0)
    model.fit(x, counts, epochs=1, batch_size=4, verbose=0)
    after = model.evaluate(x, counts, verbose=0)
    assert np.isfinite(first) and after < first
    for old, var in zip(before, readout.trainable_variables, strict=True):
        assert not np.allclose(old, var.numpy()), var.path
