"""aesthal.tflite: the .tflite file's maps against the Keras model's."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import aesthal
from aesthal import tflite
from aesthal.inference import Predictor


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = aesthal.build_model(aesthal.ModelConfig(input_size=(32, 48)))
    path = tmp_path_factory.mktemp("tflite") / "model.tflite"
    assert tflite.export_tflite(model, path) == str(path)
    return model, path


def test_tflite_maps_equal_the_keras_models(exported):
    model, path = exported
    lite = tflite.TFLitePredictor(path)
    assert lite.input_size == (32, 48)
    assert lite.tasks == ("saliency", "aesthetics")
    keras_predictor = Predictor(model)
    rng = np.random.default_rng(1)
    for shape in [(32, 48, 3), (61, 40, 3), (17, 90, 3)]:
        image = rng.integers(0, 256, shape, np.uint8)
        want = keras_predictor.predict(image)
        got = lite.predict(image)
        assert got["saliency"].shape == shape[:2]
        np.testing.assert_allclose(got["saliency"].sum(), 1.0, rtol=1e-5)
        np.testing.assert_allclose(
            got["saliency"],
            want["saliency"],
            rtol=1e-4,
            atol=1e-4 * want["saliency"].max(),
        )
        np.testing.assert_allclose(got["aesthetics"], want["aesthetics"], atol=1e-5)
        np.testing.assert_allclose(
            got["aesthetics_mean"], want["aesthetics_mean"], atol=1e-4
        )


def test_bad_inputs_name_the_problem(exported, tmp_path):
    _, path = exported
    with pytest.raises(ValueError, match="expected an RGB uint8 image"):
        tflite.TFLitePredictor(path).predict(np.zeros((8, 8), np.uint8))
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model" * 10)
    with pytest.raises(ValueError, match=f"{junk}: not a TensorFlow Lite model"):
        tflite.TFLitePredictor(junk)
