"""NaN/Inf during training: which check catches what, and what state is left.

Three layers, from the data to the update:

1. `aesthal.data` (`standardize_example`, in tf.data): a NaN/Inf/negative
   fixation map or vote vector fails when its example is read, naming the
   source: training stops before any step sees it.
2. `Trainer.fit`: `validate_batch` on the first batch, then the
   per-batch check of every later batch's labels and pixel range, which
   holds under XLA too (`jit_compile=True`, Keras' "auto" choice on a GPU):
   `InvalidBatchError` with the first batch's message, no update applied.
3. The train step's guard: a NaN/Inf task loss or gradient (from NaN/Inf
   pixels after the first batch, or from the training itself) skips the whole update,
   and `StopOnNonFinite` ends the run naming the step and the task.
"""

from __future__ import annotations

import json
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import background_fixture, fork_run

import aesthal
from aesthal import data as data_lib
from aesthal.training import InvalidBatchError, Trainer
from aesthal.training.callbacks import (
    NetworkCheckpoint,
    NonFiniteLossError,
    StopOnNonFinite,
)

SIZE = (32, 48)


def _batch(seed: int, nan: str | None = None):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (2, *SIZE, 3)).astype("float32")
    targets = {
        "saliency": rng.uniform(0, 1, (2, *SIZE, 1)).astype("float32"),
        "aesthetics": rng.integers(1, 9, (2, 10)).astype("float32"),
    }
    weights = {"saliency": np.ones(2, "float32"), "aesthetics": np.ones(2, "float32")}
    if nan == "pixel":
        images[1, 5, 7, 0] = np.nan
    elif nan == "votes":
        targets["aesthetics"][0, 3] = np.nan
    return images, targets, weights


def _model(jit_compile: bool = False) -> Trainer:
    """A compiled trainer of a new network (`.network`)."""
    keras.utils.set_random_seed(0)
    model = Trainer(aesthal.build_model(aesthal.ModelConfig(input_size=SIZE)))
    model.compile(jit_compile=jit_compile)
    return model


class _Snapshot(keras.callbacks.Callback):
    """Weights and all three optimizers' variables after each good batch."""

    def on_train_batch_end(self, batch, logs=None):
        stats = self.model.training_stats()
        if all(float(stats[f"{g}_nonfinite"]) == 0 for g in aesthal.GROUPS):
            self.weights = [v.numpy().copy() for v in self.model.weights]
            self.optimizers = _optimizer_values(self.model)


def _optimizer_values(model) -> list[np.ndarray]:
    return [
        v.numpy().copy() for o in model.group_optimizers.values() for v in o.variables
    ]


def _assert_weights(model, weights):
    for variable, value in zip(model.weights, weights, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)


def _assert_state(model, weights, optimizers):
    _assert_weights(model, weights)
    for current, value in zip(_optimizer_values(model), optimizers, strict=True):
        np.testing.assert_array_equal(current, value)


def _stream(*batches) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensors(batches[0])
    for batch in batches[1:]:
        ds = ds.concatenate(tf.data.Dataset.from_tensors(batch))
    return ds


def test_nan_pixel_skips_the_update_and_stops_with_step_and_tasks(tmp_path):
    # Epoch 1: one good batch (checkpointed). Epoch 2: a NaN pixel, which the
    # label checks cannot see; its gradients are NaN in every group.
    model = _model()
    snapshot = _Snapshot()
    backup = tmp_path / "backup"
    callbacks = [
        keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False),
        NetworkCheckpoint(tmp_path / "last.keras"),
        StopOnNonFinite(),
        snapshot,
    ]
    data = _stream(_batch(0), _batch(1, nan="pixel"), _batch(2))
    with pytest.raises(NonFiniteLossError) as caught:
        model.fit(data, epochs=3, steps_per_epoch=1, callbacks=callbacks, verbose=0)
    message = str(caught.value)
    assert "training step 2 (epoch 2, batch 1)" in message
    assert "task(s) saliency, aesthetics" in message
    assert "update was not applied" in message

    # Nothing moved: weights, Adam moments, iteration counts.
    _assert_state(model, snapshot.weights, snapshot.optimizers)
    assert [int(o.iterations.numpy()) for o in model.group_optimizers.values()] == [
        1,
        1,
        1,
    ]
    # The last checkpoints are epoch 1's, and hold this same state: the
    # network's weights in last.keras, every optimizer's in the backup.
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 1
    saved = aesthal.inference.load_model(tmp_path / "last.keras")
    _assert_weights(saved, snapshot.weights)
    restored = _model()
    restored.load_weights(backup / "latest.weights.h5")
    _assert_state(restored, snapshot.weights, snapshot.optimizers)


def test_guard_counts_only_bad_steps_and_good_steps_still_apply():
    model = _model()
    model.train_on_batch(*_batch(0), return_dict=True)
    stats = model.training_stats()
    assert {float(stats[f"{g}_nonfinite"]) for g in aesthal.GROUPS} == {0.0}
    before = [v.numpy().copy() for v in model.trainable_weights]
    images, targets, weights = _batch(1)
    images[0, 0, 0, :] = np.inf
    model.reset_metrics()
    model.train_on_batch(images, targets, weights, return_dict=True)
    assert float(model.training_stats()["shared_nonfinite"]) == 1.0
    for variable, value in zip(model.trainable_weights, before, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)
    model.reset_metrics()
    model.train_on_batch(*_batch(2), return_dict=True)
    assert float(model.training_stats()["shared_nonfinite"]) == 0.0
    assert int(model.group_optimizers["shared"].iterations.numpy()) == 2
    assert not np.array_equal(model.trainable_weights[0].numpy(), before[0])


@pytest.mark.slow
def test_nan_fixation_map_is_rejected_by_the_data_pipeline(tmp_path):
    # A TFDS-style source (aesthal.data.SourceSpec) whose third example has a
    # NaN in its fixation map: batch 2 fails in tf.data, before any step.
    rng = np.random.default_rng(0)
    maps = rng.uniform(0, 1, (4, 20, 30, 1)).astype("float32")
    maps[2, 4, 4, 0] = np.nan
    source = tf.data.Dataset.from_tensor_slices(
        {
            "image": rng.integers(0, 256, (4, 20, 30, 3), dtype=np.uint8),
            "fixation_map": maps,
            "aesthetics_votes": rng.integers(1, 9, (4, 10)).astype("int32"),
        }
    )
    stream = data_lib.make_dataset(
        data_lib.SourceSpec(source, name="nan_source"),
        image_size=SIZE,
        batch_size=2,
        training=False,
    )
    model = _model()
    snapshot = _Snapshot()
    checkpoint = NetworkCheckpoint(tmp_path / "last.keras")
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="nan_source: fixation_map has NaN or Inf"
    ):
        model.fit(
            stream,
            epochs=2,
            steps_per_epoch=1,
            callbacks=[StopOnNonFinite(), checkpoint, snapshot],
            verbose=0,
        )
    _assert_state(model, snapshot.weights, snapshot.optimizers)
    saved = aesthal.inference.load_model(tmp_path / "last.keras")
    _assert_weights(saved, snapshot.weights)


@pytest.mark.parametrize(
    "jit_compile", [False, pytest.param(True, marks=pytest.mark.slow)]
)
def test_nan_votes_are_named_by_the_batch_check_with_and_without_xla(jit_compile):
    # The per-batch check records instead of asserting, so XLA (which compiles
    # asserts out, as on a GPU with jit_compile="auto") stops the same way:
    # validate_batch's message, the step, the position; no update applied.
    model = _model(jit_compile=jit_compile)
    snapshot = _Snapshot()
    data = _stream(_batch(0), _batch(1, nan="votes"))
    with pytest.raises(
        InvalidBatchError,
        match=r"targets\['aesthetics'\] contains NaN or Inf\. In training batch 2 "
        r"of epoch 1 \(training step 2\), position\(s\) \[0\]",
    ):
        model.fit(data, callbacks=[StopOnNonFinite(), snapshot], verbose=0)
    _assert_state(model, snapshot.weights, snapshot.optimizers)


_MIRRORED_SCRIPT = r"""
import json
import os
import subprocess
import sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
import keras
import aesthal

rng = np.random.default_rng(0)
images = rng.uniform(0, 255, (2, 4, 32, 32, 3)).astype("float32")
images[1, 3, 0, 0, 0] = np.nan  # batch 2, example 4: the second replica only
targets = {
    "saliency": rng.uniform(0, 1, (2, 4, 32, 32, 1)).astype("float32"),
    "aesthetics": rng.integers(1, 9, (2, 4, 10)).astype("float32"),
}
data = tf.data.Dataset.from_tensor_slices((images, targets))
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
keras.utils.set_random_seed(0)
with strategy.scope():
    network = aesthal.build_model(aesthal.ModelConfig(input_size=(32, 32)))
    model = aesthal.Trainer(network)
    model.compile(jit_compile=False)
state = {}


class Snapshot(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        state[batch] = {
            "weights": [v.numpy().tolist() for v in self.model.weights[:3]],
            "moving": [v.numpy().tolist() for v in self.model.non_trainable_weights],
            "iterations": [
                int(o.iterations.numpy()) for o in self.model.group_optimizers.values()
            ],
            "flags": {
                k: float(v)
                for k, v in self.model.training_stats().items()
                if "nonfinite" in k
            },
        }


model.fit(data, epochs=1, callbacks=[Snapshot()], verbose=0)
print("RESULT" + json.dumps(state))
"""


@background_fixture
def nan_replica_run(tmp_path):
    """The script above, in the background from the session's start
    (conftest.background_fixture)."""
    return fork_run(  # forked from conftest's fork server
        [sys.executable, "-c", _MIRRORED_SCRIPT],
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )


@pytest.mark.slow
def test_nan_on_one_replica_skips_the_update_on_every_replica(nan_replica_run):
    result = nan_replica_run
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads(result.stdout.split("RESULT", 1)[1])
    first, second = state["0"], state["1"]
    assert first["iterations"] == [1, 1, 1]
    assert second["iterations"] == [1, 1, 1]  # refused on both replicas
    assert second["flags"]["shared_nonfinite"] == 1.0
    assert second["weights"] == first["weights"]
    assert second["moving"] == first["moving"]  # BatchNorm statistics put back


class _PoisonSaliencyHead(keras.callbacks.Callback):
    """Sets the saliency logits' kernel to NaN after the second batch.

    (Not a kernel followed by a ReLU: graph-mode fused conv+ReLU ops may turn
    NaN into 0.)
    """

    def on_train_batch_end(self, batch, logs=None):
        if batch == 1:
            kernel = self.model.network.saliency_head.logits.kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


def test_stop_names_the_step_from_the_trainer_counter_not_an_optimizer():
    # A frozen trunk: the shared group is empty, so the shared optimizer never
    # applies and its `iterations` stay 0 (as with soft sharing, which has no
    # shared group). The step named still counts the steps run.
    keras.utils.set_random_seed(0)
    network = aesthal.build_model(aesthal.ModelConfig(input_size=SIZE))
    network.backbone.trainable = False
    model = Trainer(network)
    model.compile(jit_compile=False)
    data = _stream(_batch(0), _batch(1), _batch(2))
    callbacks = [_PoisonSaliencyHead(), StopOnNonFinite()]
    with pytest.raises(
        NonFiniteLossError, match=r"training step 3 \(epoch 1, batch 3\)"
    ):
        model.fit(data, epochs=1, callbacks=callbacks, verbose=0)
    assert int(model.group_optimizers["shared"].iterations.numpy()) == 0
    assert int(model.group_optimizers["aesthetics"].iterations.numpy()) == 2
    assert int(model.step_counter.count.numpy()) == 3
