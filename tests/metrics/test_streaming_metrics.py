"""Streaming Keras metrics equal the numpy references averaged over images."""

import keras
import numpy as np
import pytest

from aesthal.metrics import aesthetics, saliency, streaming


def _maps(seed, batch=3, shape=(12, 16)):
    rng = np.random.default_rng(seed)
    y_pred = rng.random((batch, *shape, 1)).astype(np.float32)
    y_pred /= y_pred.sum(axis=(1, 2, 3), keepdims=True)
    y_true = (rng.random((batch, *shape, 1)) ** 4 * 200).astype(np.float32)
    return y_true, y_pred


@pytest.mark.parametrize(
    "metric_cls, reference",
    [
        (streaming.SaliencyCC, saliency.cc),
        (streaming.SaliencyKLD, saliency.kld),
    ],
)
def test_map_metrics_equal_reference_mean_over_labelled(metric_cls, reference):
    y_true, y_pred = _maps(0)
    y_true[1] = 0.0  # unlabelled: all zeros, masked out
    weight = np.array([1.0, 0.0, 1.0], np.float32)
    metric = metric_cls()
    metric.update_state(y_true, y_pred, sample_weight=weight)
    expected = np.mean([reference(y_pred[i], y_true[i]) for i in (0, 2)])
    assert float(metric.result()) == pytest.approx(expected, rel=1e-4)


def test_nss_on_binary_targets_equals_mit_nss():
    rng = np.random.default_rng(1)
    _, y_pred = _maps(1)
    y_true = (rng.random(y_pred.shape) < 0.05).astype(np.float32)
    y_true[:, 0, 0, 0] = 1.0
    metric = streaming.SaliencyNSS()
    metric.update_state(y_true, y_pred)
    expected = np.mean([saliency.nss(y_pred[i], y_true[i]) for i in range(3)])
    assert float(metric.result()) == pytest.approx(expected, rel=1e-4)


def test_nss_weights_pixels_by_the_target_map():
    # NSS map [[0, 0], [0, 4]]: z = [[-.5, -.5], [-.5, 1.5]]; target weights
    # [[1, 0], [0, 3]] / 4 -> (-.5 + 4.5) / 4 = 1.
    y_pred = np.array([[0.0, 0.0], [0.0, 4.0]], np.float32).reshape(1, 2, 2, 1)
    y_true = np.array([[1.0, 0.0], [0.0, 3.0]], np.float32).reshape(1, 2, 2, 1)
    metric = streaming.SaliencyNSS()
    metric.update_state(y_true, y_pred)
    assert float(metric.result()) == pytest.approx(1.0)


def test_accumulates_resets_and_ignores_empty_batches():
    y_true, y_pred = _maps(2)
    metric = streaming.SaliencyCC()
    metric.update_state(y_true[:1], y_pred[:1])
    metric.update_state(y_true[1:], y_pred[1:], sample_weight=np.array([1.0, 1.0]))
    metric.update_state(np.zeros_like(y_true), y_pred, sample_weight=np.zeros(3))
    expected = np.mean([saliency.cc(y_pred[i], y_true[i]) for i in range(3)])
    assert float(metric.result()) == pytest.approx(expected, rel=1e-4)
    metric.reset_state()
    assert float(metric.result()) == 0.0
    metric.update_state(np.zeros_like(y_true), y_pred, sample_weight=np.zeros(3))
    assert float(metric.result()) == 0.0  # nothing counted, not NaN


def test_aesthetics_metrics_equal_reference():
    rng = np.random.default_rng(3)
    votes = rng.integers(0, 50, size=(4, 10)).astype(np.float32)
    votes[2] = 0.0  # unlabelled
    y_pred = rng.random((4, 10)).astype(np.float32)
    y_pred /= y_pred.sum(axis=1, keepdims=True)
    weight = np.array([1, 1, 0, 1], np.float32)
    keep = [0, 1, 3]
    for r in (1.0, 2.0):
        emd = streaming.AestheticsEMD(r=r)
        emd.update_state(votes, y_pred, sample_weight=weight)
        expected = aesthetics.emd(votes[keep], y_pred[keep], r=r).mean()
        assert float(emd.result()) == pytest.approx(expected, rel=1e-5)
    mse = streaming.MeanScoreSquaredError()
    mse.update_state(votes, y_pred, sample_weight=weight[:, None])
    expected = aesthetics.mean_score_mse(votes[keep], y_pred[keep])
    assert float(mse.result()) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "metric",
    [
        streaming.SaliencyCC(name="val_cc"),
        streaming.SaliencyKLD(),
        streaming.SaliencyNSS(),
        streaming.AestheticsEMD(r=1.0, name="emd1"),
        streaming.MeanScoreSquaredError(),
    ],
)
def test_config_round_trip(metric):
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(metric)
    )
    assert type(restored) is type(metric)
    assert restored.get_config() == metric.get_config()


def _per_image_mse(y_true, y_pred):
    return keras.ops.mean((y_true - y_pred) ** 2, axis=(1, 2, 3))


def test_metrics_in_compiled_model_use_per_task_masks():
    images = keras.Input((6, 8, 1))
    saliency_out = keras.layers.Activation("sigmoid", name="saliency")(images)
    pooled = keras.layers.Flatten()(images)
    aesthetics_out = keras.layers.Dense(10, activation="softmax", name="aesthetics")(
        pooled
    )
    model = keras.Model(
        images, {"saliency": saliency_out, "aesthetics": aesthetics_out}
    )
    model.compile(
        loss={"saliency": _per_image_mse, "aesthetics": "mse"},
        # Keras 3 passes sample weights only to `weighted_metrics`.
        weighted_metrics={
            "saliency": [streaming.SaliencyCC()],
            "aesthetics": [streaming.AestheticsEMD()],
        },
    )
    rng = np.random.default_rng(4)
    x = rng.random((4, 6, 8, 1)).astype(np.float32)
    y_sal = rng.random((4, 6, 8, 1)).astype(np.float32)
    y_sal[3] = 0.0
    y_aes = rng.integers(1, 9, size=(4, 10)).astype(np.float32)
    y_aes[0] = 0.0
    weights = {
        "saliency": np.array([1, 1, 1, 0], np.float32),
        "aesthetics": np.array([0, 1, 1, 1], np.float32),
    }
    results = model.evaluate(
        x,
        {"saliency": y_sal, "aesthetics": y_aes},
        sample_weight=weights,
        batch_size=2,
        return_dict=True,
        verbose=0,
    )
    pred = model.predict(x, verbose=0)
    expected_cc = np.mean(
        [saliency.cc(pred["saliency"][i], y_sal[i]) for i in range(3)]
    )
    expected_emd = aesthetics.emd(y_aes[1:], pred["aesthetics"][1:]).mean()
    assert results["saliency_cc"] == pytest.approx(expected_cc, rel=1e-4)
    assert results["aesthetics_emd"] == pytest.approx(expected_emd, rel=1e-4)
