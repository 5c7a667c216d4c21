"""Models written before issue 25 still load and predict the same maps.

`tests/fixtures/old_quickstart.tar.xz` holds a `.keras` file and a SavedModel
written by aesthal at 078483d, when `AesthalModel` was both the network and
its training recipe (its `.keras` files carry a compile config, three
optimizers' state and a step counter beside the weights), and that code's
predictions of four images; `tests/fixtures/make_old_quickstart.py` says how
it was made.
"""

from __future__ import annotations

import pathlib
import tarfile
import warnings
import zipfile

import keras
import numpy as np
import pytest

import aesthal
from aesthal.config import TrainConfig
from aesthal.inference import Predictor, load_model
from aesthal.training.callbacks import WorkerBackupAndRestore, is_pre_trainer_backup
from aesthal.training.runner import make_trainer

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "old_quickstart.tar.xz"


@pytest.fixture(scope="module")
def old_files(tmp_path_factory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("old_quickstart")
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(folder, filter="data")
    return folder


def _check_maps(predictor: Predictor, expected) -> None:
    for index in range(4):
        outputs = predictor.predict(expected[f"image_{index}"])
        saliency = expected[f"saliency_{index}"]
        assert outputs["saliency"].shape == saliency.shape
        # The same computation on the same CPU; a different graph may order
        # the float sums differently, so a tolerance far below a map's scale.
        np.testing.assert_allclose(
            outputs["saliency"], saliency, rtol=1e-5, atol=1e-5 * saliency.max()
        )
        np.testing.assert_allclose(
            outputs["aesthetics"], expected[f"aesthetics_{index}"], atol=1e-6
        )


def test_an_old_keras_file_loads_as_the_network_and_predicts_the_same(old_files):
    expected = np.load(old_files / "expected.npz")
    with warnings.catch_warnings():
        # Keras warns when it cannot restore a compile config; the network
        # ignores the old one by design, silently.
        warnings.simplefilter("error")
        model = load_model(old_files / "model.keras")
    assert model.config.backbone == "tiny"
    assert model.config.input_size == (96, 128)
    _check_maps(Predictor(model), expected)


def test_an_old_saved_model_predicts_the_same(old_files):
    expected = np.load(old_files / "expected.npz")
    _check_maps(Predictor(old_files / "saved_model"), expected)


def test_a_backup_of_an_old_run_resumes_in_a_trainer(old_files, tmp_path):
    """An interrupted run of the old code: its backup (the old class's weights
    file: network, three optimizers, step counter) restores into a `Trainer`
    of the run's configuration, as a rerun of the run would."""
    with zipfile.ZipFile(old_files / "model.keras") as archive:
        weights = archive.read("model.weights.h5")
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "latest.weights.h5").write_bytes(weights)
    (backup / "training_metadata.json").write_text('{"epoch": 8, "batch": 0}')
    assert is_pre_trainer_backup(backup / "latest.weights.h5")

    old = load_model(old_files / "model.keras")
    keras.utils.set_random_seed(1)  # other weights than the old run's
    network = aesthal.build_model(old.config)
    trainer = make_trainer(
        network, TrainConfig(epochs=8, steps_per_epoch=200, lr_schedule="cosine")
    )
    restore = WorkerBackupAndRestore(str(backup))
    restore.set_model(trainer)
    restore.on_train_begin()
    assert trainer._initial_epoch == 8
    for mine, theirs in zip(network.weights, old.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.path)
    assert int(trainer.step_counter.count.numpy()) == 1600
    assert [int(o.iterations.numpy()) for o in trainer.group_optimizers.values()] == [
        1600,
        1600,
        1600,
    ]
