"""RestoreBestEpoch: the weights of the lowest validation loss, across resumes."""

import json

import keras
import numpy as np
import pytest

from aesthal.training.best_epoch import RestoreBestEpoch


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    return model


def _set(model, value):
    model.set_weights(
        [np.full(w.shape, value, np.float32) for w in model.get_weights()]
    )


def _value(model):
    return float(model.get_weights()[0].flat[0])


def test_ends_with_the_best_epoch_and_a_resume_keeps_comparing(tmp_path):
    model = _model()
    callback = RestoreBestEpoch(tmp_path)
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, (weights, loss) in enumerate([(1.0, 2.0), (2.0, 1.0), (3.0, 1.5)]):
        _set(model, weights)
        callback.on_epoch_end(epoch, {"val_loss": loss})
    callback.on_train_end()
    assert _value(model) == 2.0
    assert json.loads((tmp_path / "best.json").read_text()) == {
        "monitor": "val_loss",
        "value": 1.0,
        "epoch": 2,
    }
    # A resumed run (new process, same folder): epoch 4 at 1.2 is not better
    # than epoch 2's 1.0, a NaN never is, epoch 6 at 0.5 is.
    resumed = RestoreBestEpoch(tmp_path)
    resumed.set_model(model)
    resumed.on_train_begin()
    _set(model, 4.0)
    resumed.on_epoch_end(3, {"val_loss": 1.2})
    _set(model, 5.0)
    resumed.on_epoch_end(4, {"val_loss": float("nan")})
    resumed.on_train_end()
    assert _value(model) == 2.0
    resumed.on_train_begin()
    _set(model, 6.0)
    resumed.on_epoch_end(5, {"val_loss": 0.5})
    _set(model, 7.0)
    resumed.on_train_end()
    assert _value(model) == 6.0
    assert json.loads((tmp_path / "best.json").read_text())["epoch"] == 6


def test_without_validation_logs_the_error_names_the_flag(tmp_path):
    callback = RestoreBestEpoch(tmp_path)
    callback.set_model(_model())
    callback.on_train_begin()
    with pytest.raises(ValueError, match="--validation_split"):
        callback.on_epoch_end(0, {"loss": 1.0})
