"""training.runner: trunk initialisation; resuming only under the same config."""

import json

import numpy as np
import pytest

import aesthal
from aesthal.config import ExperimentConfig, TrainConfig
from aesthal.training import runner


def test_init_from_copies_the_trunk_only(tmp_path):
    config = aesthal.ModelConfig(input_size=(32, 32))
    source = aesthal.build_model(config)
    path = tmp_path / "source.keras"
    source.save(path)
    target = aesthal.build_model(config)  # a different random initialisation
    runner._initialise_trunk(target, str(path))
    for a, b in zip(
        source.backbone.get_weights(), target.backbone.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    heads = zip(
        source.saliency_head.get_weights(),
        target.saliency_head.get_weights(),
        strict=True,
    )
    assert any(not np.array_equal(a, b) for a, b in heads)


def test_init_heads_copies_the_trunk_and_the_heads(tmp_path):
    config = aesthal.ModelConfig(input_size=(32, 32))
    source = aesthal.build_model(config)
    source.save(tmp_path / "source.keras")
    target = aesthal.build_model(config)  # a different random initialisation
    pairs = list(zip(source.get_weights(), target.get_weights(), strict=True))
    assert sum(not np.array_equal(a, b) for a, b in pairs) > 2
    runner._initialise_trunk(target, str(tmp_path / "source.keras"), heads=True)
    for part in ("backbone", "saliency_head", "aesthetics_head"):
        for a, b in zip(
            getattr(source, part).get_weights(),
            getattr(target, part).get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)
    image = np.random.default_rng(0).random((1, 32, 32, 3)).astype("float32") * 255
    np.testing.assert_allclose(
        source(image)["saliency"], target(image)["saliency"], rtol=1e-6
    )


def test_init_heads_rejects_a_head_of_another_shape(tmp_path):
    source = aesthal.build_model(
        aesthal.ModelConfig(input_size=(32, 32), decoder_channels=8)
    )
    source.save(tmp_path / "narrow.keras")
    target = aesthal.build_model(aesthal.ModelConfig(input_size=(32, 32)))
    before = target.get_weights()
    with pytest.raises(ValueError, match="its saliency head does not match"):
        runner._initialise_trunk(target, str(tmp_path / "narrow.keras"), heads=True)
    # Checked before anything is copied: not even the (matching) trunk moved.
    for a, b in zip(before, target.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_init_from_rejects_another_trunk(tmp_path):
    source = aesthal.build_model(aesthal.ModelConfig(input_size=(32, 32)))
    source.save(tmp_path / "tiny.keras")
    other = aesthal.build_model(
        aesthal.ModelConfig(backbone="mobilenet_v2", input_size=(32, 32))
    )
    with pytest.raises(ValueError, match="its trunk is 'tiny'"):
        runner._initialise_trunk(other, str(tmp_path / "tiny.keras"))


def test_a_backup_is_only_resumed_under_its_own_config(tmp_path):
    first = ExperimentConfig(
        output_dir=str(tmp_path), train=TrainConfig(learning_rate=1e-3)
    )
    (tmp_path / "backup").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(first.to_dict()))
    runner.check_resumable(tmp_path, first)  # same config: resumable
    second = ExperimentConfig(
        output_dir=str(tmp_path), train=TrainConfig(learning_rate=1e-2)
    )
    with pytest.raises(ValueError, match=r"differs in train\.learning_rate\)"):
        runner.train(second)


def test_runner_records_the_trained_tasks_in_the_model(tmp_path):
    # Issue 15, item 2: --tasks=saliency gives a model whose config (and
    # model.keras) says so; Predictor then leaves aesthetics out.
    from aesthal.config import DataConfig

    config = ExperimentConfig(
        output_dir=str(tmp_path / "run"),
        model=aesthal.ModelConfig(input_size=(32, 48)),  # tasks left at both
        data=DataConfig(
            dataset="synthetic_scenes/tiny",
            data_dir=str(tmp_path / "tfds"),
            tasks=("saliency",),
            batch_size=4,
            validation_split=None,
        ),
        train=TrainConfig(epochs=1, steps_per_epoch=1),
    )
    model = runner.train(config, verbose=0)
    assert model.config.tasks == ("saliency",)
    saved = aesthal.inference.load_model(tmp_path / "run" / "model.keras")
    assert saved.config.tasks == ("saliency",)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history["loss"]) == 1 and "aesthetics_loss" not in history


def test_restore_best_epoch_saves_the_epoch_of_lowest_validation_loss(tmp_path):
    from aesthal.config import DataConfig

    config = ExperimentConfig(
        output_dir=str(tmp_path / "run"),
        model=aesthal.ModelConfig(input_size=(32, 48), tasks=("saliency",)),
        data=DataConfig(
            dataset="synthetic_scenes/tiny",
            data_dir=str(tmp_path / "tfds"),
            tasks=("saliency",),
            batch_size=4,
            validation_split="validation",
        ),
        # A learning rate high enough that the validation loss is not
        # monotone over 4 epochs of 2 steps.
        train=TrainConfig(
            epochs=4, steps_per_epoch=2, learning_rate=0.05, restore_best_epoch=True
        ),
    )
    runner.train(config, verbose=0)
    run = tmp_path / "run"
    history = json.loads((run / "history.json").read_text())
    best = json.loads((run / "checkpoints" / "best.json").read_text())
    losses = history["val_loss"]
    assert best["epoch"] == int(np.argmin(losses)) + 1
    assert best["epoch"] < len(losses)  # so the last weights are not the best
    assert best["value"] == pytest.approx(min(losses), rel=1e-6)
    saved = aesthal.inference.load_model(run / "model.keras")
    reference = aesthal.build_model(config.model)
    reference.load_weights(run / "checkpoints" / "best.weights.h5")
    for a, b in zip(saved.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_restore_best_epoch_without_validation_is_refused_before_training(tmp_path):
    from aesthal.config import DataConfig

    config = ExperimentConfig(
        output_dir=str(tmp_path / "run"),
        model=aesthal.ModelConfig(input_size=(32, 48)),
        data=DataConfig(
            dataset="synthetic_scenes/tiny",
            data_dir=str(tmp_path / "tfds"),
            validation_split=None,
        ),
        train=TrainConfig(epochs=1, steps_per_epoch=1, restore_best_epoch=True),
    )
    with pytest.raises(ValueError, match="needs a validation split"):
        runner.train(config, verbose=0)
    assert not (tmp_path / "run" / "history.json").exists()


@pytest.fixture(scope="module")
def tiny_data_dir(tmp_path_factory):
    """synthetic_scenes/tiny built once: train 24, validation 8, test 8."""
    from aesthal.config import DataConfig
    from aesthal.data import prepare

    data_dir = tmp_path_factory.mktemp("tfds")
    prepare.prepare_data(
        DataConfig(dataset="synthetic_scenes/tiny", data_dir=str(data_dir))
    )
    return str(data_dir)


@pytest.mark.parametrize(
    "batch_size, data, message",
    [
        # Issue 24, item 8: stalled at "Epoch 1/2" building batches of 100000.
        (
            100000,
            {},
            "batch_size 100000 is larger than the training split "
            "synthetic_scenes/tiny 'train' (24 examples): each batch would repeat "
            "examples. Use --batch_size 24 or less.",
        ),
        # Trained a whole epoch, then died: validation had no full batch.
        (
            16,
            {},
            "batch_size 16 is larger than the validation split "
            "synthetic_scenes/tiny 'validation' (8 examples): validation keeps "
            "only full batches, so it would have none. Use --batch_size 8 or less, "
            "or --validation_split='' to train without validation.",
        ),
        (
            16,
            {"train_split": "train[:10]", "validation_split": None},
            "larger than the training split synthetic_scenes/tiny 'train[:10]' "
            "(10 examples)",
        ),
        # Every trained task budgeted: at most 5 examples keep a label.
        (
            8,
            {"tasks": ("saliency",), "saliency_labels": 5},
            "(5 labelled examples (the label budgets))",
        ),
    ],
)
def test_a_batch_larger_than_a_split_is_refused_before_training(
    tmp_path, tiny_data_dir, batch_size, data, message
):
    from aesthal.config import DataConfig
    from aesthal.data.prepare import BatchSizeError

    config = ExperimentConfig(
        output_dir=str(tmp_path / "run"),
        model=aesthal.ModelConfig(input_size=(32, 48)),
        data=DataConfig(
            dataset="synthetic_scenes/tiny",
            data_dir=tiny_data_dir,
            batch_size=batch_size,
            **data,
        ),
        train=TrainConfig(epochs=2, steps_per_epoch=1),
    )
    with pytest.raises(BatchSizeError) as caught:
        runner.train(config, verbose=0)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    # Refused before anything was written (the lock file aside).
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["run.lock"]


def test_a_batch_as_large_as_the_splits_trains(tmp_path, tiny_data_dir):
    from aesthal.config import DataConfig

    config = ExperimentConfig(
        output_dir=str(tmp_path / "run"),
        model=aesthal.ModelConfig(input_size=(32, 48)),
        data=DataConfig(
            dataset="synthetic_scenes/tiny",
            data_dir=tiny_data_dir,
            batch_size=8,  # the validation split's size
            train_split="train[:8]",
        ),
        train=TrainConfig(epochs=1, steps_per_epoch=1),
    )
    runner.train(config, verbose=0)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history["val_loss"]) == 1
