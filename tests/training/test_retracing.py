"""`fit` traces `train_step` once: no retracing per batch (no timings asserted)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from aesthal import ModelConfig, Trainer, build_model
from aesthal import data as data_lib

SIZE = (32, 48)


def _counting_model():
    keras.utils.set_random_seed(0)
    model = Trainer(build_model(ModelConfig(backbone="tiny", input_size=SIZE)))
    model.compile()
    traces = []
    train_step = model.train_step

    def counting_train_step(data):
        traces.append(1)  # Python runs only while tracing
        return train_step(data)

    model.train_step = counting_train_step
    return model, traces


def _examples(n: int) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    maps = rng.integers(1, 60000, (n, *SIZE, 1)).astype(np.uint16)
    return tf.data.Dataset.from_tensor_slices(
        {
            "image": rng.integers(0, 256, (n, *SIZE, 3)).astype(np.uint8),
            "fixation_map": maps,
            "aesthetics_votes": rng.integers(1, 20, (n, 10)).astype(np.int32),
            "has_saliency": np.arange(n) % 3 != 0,
            "has_aesthetics": np.arange(n) % 3 != 1,
        }
    )


@pytest.mark.slow
def test_fit_on_the_pipeline_traces_train_step_once():
    model, traces = _counting_model()
    ds = data_lib.make_dataset(
        data_lib.SourceSpec(_examples(7), name="generated"),
        image_size=SIZE,
        batch_size=2,
        shuffle_buffer=8,
    )
    history = model.fit(ds, epochs=2, steps_per_epoch=4, verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.isfinite(history.history["loss"]).all()
    assert len(traces) == 1


def test_fit_on_arrays_traces_train_step_once():
    model, traces = _counting_model()
    rng = np.random.default_rng(1)
    n = 6
    images = rng.uniform(0, 255, (n, *SIZE, 3)).astype("float32")
    maps = rng.uniform(0.1, 1, (n, *SIZE, 1)).astype("float32")
    targets = {"saliency": maps, "aesthetics": rng.uniform(1, 9, (n, 10))}
    weights = {"saliency": np.ones(n), "aesthetics": np.ones(n)}
    model.fit(images, targets, sample_weight=weights, batch_size=2, epochs=2, verbose=0)
    assert len(traces) == 1


def test_the_counter_sees_a_retrace_for_a_new_batch_shape():
    # A check of the check: a second fit on batches of another static size is
    # a new input signature, hence exactly one more trace.
    model, traces = _counting_model()
    rng = np.random.default_rng(2)
    images = rng.uniform(0, 255, (6, *SIZE, 3)).astype("float32")
    maps = rng.uniform(0.1, 1, (6, *SIZE, 1)).astype("float32")
    for batch in (2, 3):
        ds = tf.data.Dataset.from_tensor_slices((images, {"saliency": maps}))
        model.fit(ds.batch(batch, drop_remainder=True), epochs=1, verbose=0)
    assert len(traces) == 2


def test_jit_compile_auto_is_off_on_cpu():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is present; 'auto' may turn XLA on there")
    model = Trainer(build_model(ModelConfig(backbone="tiny", input_size=SIZE)))
    model.compile(jit_compile="auto")
    assert model.jit_compile is False
