"""`aesthal.training.Trainer`: compile, train_step and test_step under fit (tiny
trunk)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import fit_batch

import aesthal
from aesthal.config import ModelConfig
from aesthal.training import InvalidBatchError, Trainer

SIZE = (32, 32)
GROUP_NAMES = ("shared", "aesthetics", "saliency")


def _batch(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch, *SIZE, 3)).astype("float32")
    targets = {
        "saliency": rng.uniform(0, 1, (batch, *SIZE, 1)).astype("float32") ** 4,
        "aesthetics": rng.integers(0, 50, (batch, 10)).astype("float32") + 1,
    }
    weights = {
        "saliency": np.ones(batch, "float32"),
        "aesthetics": np.ones(batch, "float32"),
    }
    return images, targets, weights


def _model(side_heads=(), seed=0) -> Trainer:
    """A trainer of a new tiny network (not compiled)."""
    keras.utils.set_random_seed(seed)
    return Trainer(
        aesthal.build_model(ModelConfig(input_size=SIZE, side_heads=side_heads))
    )


def _values(variables):
    return [v.numpy().copy() for v in variables]


_fit = fit_batch


def test_first_adam_step_moves_each_group_by_its_learning_rate():
    model = _model(side_heads=(("saliency", "stage2", 0.5),))
    lrs = {"shared": 1e-3, "aesthetics": 0.0, "saliency": 1e-2}
    model.compile(
        # A tiny epsilon makes Adam's first update exactly lr * sign(gradient).
        optimizers={
            g: keras.optimizers.Adam(lr, epsilon=1e-12) for g, lr in lrs.items()
        },
        jit_compile=False,
    )
    groups = model.variable_groups()
    before = {g: _values(v) for g, v in groups.items()}
    history = _fit(model, _batch())
    for group, lr in lrs.items():
        deltas = np.concatenate(
            [
                np.abs(v.numpy() - b).ravel()
                for v, b in zip(groups[group], before[group], strict=True)
            ]
        )
        if lr == 0:
            assert deltas.max() == 0.0, group
            continue
        assert deltas.max() <= lr * 1.001, group
        assert np.mean(np.abs(deltas - lr) < 0.001 * lr) > 0.95, group
        np.testing.assert_allclose(history.history[f"{group}_lr"], [lr], rtol=1e-6)
    for group in GROUP_NAMES:
        assert int(model.group_optimizers[group].iterations) == 1


def test_all_zero_saliency_mask_leaves_saliency_head_unchanged():
    model = _model()
    model.compile(jit_compile=False)
    images, targets, weights = _batch()
    weights["saliency"] = np.zeros(4, "float32")
    targets["saliency"][:2] = 0.0  # unlabelled examples may have all-zero maps
    groups = model.variable_groups()
    before = {g: _values(v) for g, v in groups.items()}
    history = _fit(model, (images, targets, weights))
    assert history.history["saliency_loss"] == [0.0]
    for v, b in zip(groups["saliency"], before["saliency"], strict=True):
        np.testing.assert_array_equal(v.numpy(), b)
    for group in ("shared", "aesthetics"):
        moved = any(
            not np.array_equal(v.numpy(), b)
            for v, b in zip(groups[group], before[group], strict=True)
        )
        assert moved, group
    assert np.isfinite(history.history["loss"][0])


def test_masked_loss_averages_only_labelled_examples():
    model = _model()
    model.compile(jit_compile=False)
    images, targets, weights = _batch()
    weights["aesthetics"] = np.array([1, 0, 1, 0], "float32")
    out = model.predict(images, verbose=0)
    emd = aesthal.losses.squared_emd(targets["aesthetics"], out["aesthetics"]).numpy()
    logs = model.evaluate(
        images, targets, sample_weight=weights, verbose=0, return_dict=True
    )
    np.testing.assert_allclose(logs["aesthetics_loss"], emd[[0, 2]].mean(), rtol=1e-5)


def test_task_metrics_count_only_labelled_examples():
    # `compile(metrics=...)` passes each task's mask as the sample weight.
    from aesthal.metrics import aesthetics, saliency, streaming

    model = _model()
    model.compile(
        metrics={
            "saliency": [streaming.SaliencyCC()],
            "aesthetics": [streaming.AestheticsEMD()],
        },
        jit_compile=False,
    )
    images, targets, weights = _batch()
    weights["saliency"] = np.array([1, 0, 0, 1], "float32")
    targets["saliency"][1:3] = 0.0  # unlabelled: all-zero maps, not NaN
    weights["aesthetics"] = np.array([0, 1, 1, 1], "float32")
    out = model.predict(images, verbose=0)
    logs = model.evaluate(
        images, targets, sample_weight=weights, verbose=0, return_dict=True
    )
    expected_cc = np.mean(
        [saliency.cc(out["saliency"][i], targets["saliency"][i]) for i in (0, 3)]
    )
    expected_emd = aesthetics.emd(
        targets["aesthetics"][1:], out["aesthetics"][1:], r=2
    ).mean()
    assert logs["saliency_cc"] == pytest.approx(expected_cc, rel=1e-4)
    assert logs["aesthetics_emd"] == pytest.approx(expected_emd, rel=1e-4)


def test_uncertainty_log_variances_learn_fixed_weights_do_not():
    model = _model()
    model.compile(
        optimizers={
            "saliency": keras.optimizers.Adam(0.1),
            "aesthetics": keras.optimizers.Adam(0.1),
        },
        loss_weighting="uncertainty",
        jit_compile=False,
    )
    log_vars = model.loss_weighting.log_variances
    assert {id(log_vars["saliency"])} <= {
        id(v) for v in model.variable_groups()["saliency"]
    }
    assert {id(log_vars["aesthetics"])} <= {
        id(v) for v in model.variable_groups()["aesthetics"]
    }
    history = _fit(model, _batch())
    # Both losses are < 1 at the start, so d/ds (exp(-s) L + s) = 1 - exp(-s) L > 0
    # and Adam's first step moves each s by exactly -lr.
    assert (
        history.history["saliency_loss"][0] < 1
        and history.history["aesthetics_loss"][0] < 1
    )
    np.testing.assert_allclose(log_vars["saliency"].numpy(), -0.1, rtol=1e-3)
    np.testing.assert_allclose(log_vars["aesthetics"].numpy(), -0.1, rtol=1e-3)
    assert history.history["saliency_weight"] == [
        1.0
    ]  # exp(-0), logged before the step
    logs = model.evaluate(*_batch()[:2], verbose=0, return_dict=True)
    weights = model.loss_weighting.weights_by_task()
    np.testing.assert_allclose(weights["saliency"], np.exp(0.1), rtol=1e-4)
    np.testing.assert_allclose(
        logs["loss"],
        np.exp(0.1) * (logs["saliency_loss"] + logs["aesthetics_loss"]) - 0.2,
        rtol=1e-4,
    )

    fixed = _model()
    fixed.compile(loss_weights={"saliency": 2.0, "aesthetics": 0.5}, jit_compile=False)
    history = _fit(fixed, _batch(), epochs=2)
    assert history.history["saliency_weight"] == [2.0, 2.0]
    assert history.history["aesthetics_weight"] == [0.5, 0.5]
    logs = fixed.evaluate(*_batch()[:2], verbose=0, return_dict=True)
    np.testing.assert_allclose(
        logs["loss"],
        2.0 * logs["saliency_loss"] + 0.5 * logs["aesthetics_loss"],
        rtol=1e-5,
    )


def test_side_head_losses_join_their_task():
    model = _model(side_heads=(("aesthetics", "stage3", 0.25),))
    model.compile(jit_compile=False)
    logs = model.evaluate(*_batch()[:2], verbose=0, return_dict=True)
    np.testing.assert_allclose(
        logs["loss"],
        logs["saliency_loss"]
        + logs["aesthetics_loss"]
        + 0.25 * logs["side0_aesthetics_loss"],
        rtol=1e-5,
    )


def test_saving_writes_the_network_and_the_weights_file_keeps_all_training_state(
    tmp_path,
):
    """`network.save` writes the network alone (what export and inference
    load); `trainer.save_weights` (what BackupAndRestore writes) keeps every
    optimizer's state, the loss weighting's variables and the step counter,
    and a new trainer loading it continues training exactly."""
    model = _model(side_heads=(("saliency", "stage2", 0.5),))

    def compile_(trainer):
        trainer.compile(
            optimizers={
                "shared": keras.optimizers.Adam(1e-3),
                "aesthetics": keras.optimizers.SGD(1e-2, momentum=0.9),
                "saliency": keras.optimizers.Adam(
                    keras.optimizers.schedules.ExponentialDecay(1e-2, 1, 0.5)
                ),
            },
            loss_weighting="uncertainty",
            metrics={"aesthetics": [keras.metrics.MeanSquaredError()]},
            jit_compile=False,
        )

    compile_(model)
    batch = _batch()
    _fit(model, batch, epochs=2)
    path = str(tmp_path / "model.keras")
    model.network.save(path)
    network = keras.models.load_model(path)
    assert isinstance(network, aesthal.AesthalModel)
    assert not network.get_compile_config()  # the network alone
    images = batch[0]
    # Exact: the same weights on the same batch, eagerly, on one CPU.
    for key, value in model(images).items():
        np.testing.assert_array_equal(network(images)[key].numpy(), value.numpy())

    state = str(tmp_path / "trainer.weights.h5")
    model.save_weights(state)
    keras.utils.set_random_seed(1)  # other initial weights: all must be loaded
    loaded = Trainer(
        aesthal.build_model(
            ModelConfig(input_size=SIZE, side_heads=(("saliency", "stage2", 0.5),))
        )
    )
    compile_(loaded)
    loaded.load_weights(state)
    for group in GROUP_NAMES:
        a, b = model.group_optimizers[group], loaded.group_optimizers[group]
        assert type(a) is type(b)
        assert int(b.iterations) == 2
        assert len(a.variables) == len(b.variables) > 1
        for u, v in zip(a.variables, b.variables, strict=True):
            np.testing.assert_array_equal(u.numpy(), v.numpy())
    assert float(loaded.group_optimizers["saliency"].learning_rate) == pytest.approx(
        2.5e-3
    )
    np.testing.assert_array_equal(
        loaded.loss_weighting.log_variances["saliency"].numpy(),
        model.loss_weighting.log_variances["saliency"].numpy(),
    )
    assert int(loaded.step_counter.count.numpy()) == 2
    # Training continues where it stopped: one more step on both is identical.
    _fit(model, batch)
    _fit(loaded, batch)
    for u, v in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_allclose(v.numpy(), u.numpy(), rtol=1e-5, atol=1e-7)


def test_the_network_alone_refuses_to_be_compiled():
    network = _model().network
    with pytest.raises(TypeError, match=r"Trainer\(model\)\.compile"):
        network.compile(optimizers={"shared": "adam"})


def test_unknown_names_raise():
    model = _model()
    with pytest.raises(ValueError, match=r"unknown group names \['backbone'\]"):
        model.compile(optimizers={"backbone": keras.optimizers.Adam()})
    with pytest.raises(ValueError, match=r"metrics: unknown tasks \['depth'\]"):
        model.compile(metrics={"depth": ["mse"]})
    with pytest.raises(
        ValueError, match="cannot be used with loss_weighting='uncertainty'"
    ):
        model.compile(loss_weighting="uncertainty", loss_weights={"saliency": 2.0})
    with pytest.raises(ValueError, match="loss_weighting='mgda' is unknown"):
        model.compile(loss_weighting="mgda")
    shared = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="each group needs its own"):
        model.compile(optimizers={"shared": shared, "saliency": shared})


def _bad(kind):
    images, targets, weights = _batch(2)
    if kind == "channels":
        images = images[..., :1]
    elif kind == "size":
        targets["saliency"] = np.ones((2, 16, 16, 1), "float32")
    elif kind == "negative":
        targets["saliency"][0, 0, 0, 0] = -1.0
    elif kind == "nan":
        targets["aesthetics"][1, 3] = np.nan
    elif kind == "mask":
        weights["aesthetics"] = np.array([1.0, 0.5], "float32")
    elif kind == "empty":
        targets["aesthetics"][0] = 0.0
    return images, targets, weights


@pytest.mark.parametrize(
    "kind, match",
    [
        ("channels", r"images must be RGB \[B, 32, 32, 3\]"),
        (
            "size",
            r"targets\['saliency'\] has shape \(2, 16, 16, 1\); "
            r"expected \(2, 32, 32, 1\)",
        ),
        ("negative", r"targets\['saliency'\] has negative values"),
        ("nan", r"targets\['aesthetics'\] contains NaN"),
        ("mask", r"sample_weights\['aesthetics'\] must be 0 or 1"),
        ("empty", r"targets\['aesthetics'\] is all zeros for labelled examples \[0\]"),
    ],
)
def test_bad_first_batch_is_rejected_before_training(kind, match):
    model = _model()
    model.compile(jit_compile=False)
    before = _values(model.trainable_variables)
    images, targets, weights = _bad(kind)
    dataset = tf.data.Dataset.from_tensors((images, targets, weights))
    with pytest.raises(ValueError, match=match):
        model.fit(dataset, verbose=0)
    for v, b in zip(model.trainable_variables, before, strict=True):
        np.testing.assert_array_equal(v.numpy(), b)


@pytest.fixture(scope="module")
def later_batch_models():
    """`fresh(jit_compile)`: one compiled model per `jit_compile`, shared by
    the cases of the test below and put back, before each, in its state just
    after `compile` (weights, the group optimizers' variables, the step
    counter, the weighting's variables): as a new model, but its train and
    test functions (the XLA compilations, the cost) are traced once."""
    models = {}

    def state(model):
        variables = list(model.weights) + list(model.step_counter.variables)
        for optimizer in model.group_optimizers.values():
            variables += list(optimizer.variables)
        return variables + list(model.loss_weighting.variables)

    def fresh(jit_compile):
        if jit_compile not in models:
            model = _model()
            model.compile(jit_compile=jit_compile)
            models[jit_compile] = (model, [v.numpy() for v in state(model)])
        model, initial = models[jit_compile]
        for variable, value in zip(state(model), initial, strict=True):
            variable.assign(value)
        return model

    return fresh


def _pixels_0_to_1000():
    images, targets, weights = _batch(2, seed=3)
    images = images / 255.0 * 1000.0  # the classic scale bug, the other way
    return images, targets, weights


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize(
    "kind, match, positions",
    [
        (
            "range",
            r"images must have values in 0\.\.255; got [\d.]+\.\.[\d.]+\.",
            "[0, 1]",
        ),
        ("negative", r"targets\['saliency'\] has negative values \(min -1\)", "[0]"),
        ("nan", r"targets\['aesthetics'\] contains NaN or Inf\.", "[1]"),
        (
            "mask",
            r"sample_weights\['aesthetics'\] must be 0 or 1; got values \[0\.5\]",
            "[1]",
        ),
        (
            "empty",
            r"targets\['aesthetics'\] is all zeros for labelled examples \[0\] "
            r"\(sample_weights\['aesthetics'\] is 1 there\)",
            "[0]",
        ),
    ],
)
def test_bad_later_batch_stops_training_with_the_first_batch_message(
    later_batch_models, kind, match, positions, jit_compile
):
    # Issue 15, items 3 and 4: every batch is checked, under XLA too (where
    # asserts are compiled out), with validate_batch's own message, the step
    # and the positions; the bad batch's update is not applied.
    model = later_batch_models(jit_compile)
    bad = _pixels_0_to_1000() if kind == "range" else _bad(kind)
    # The first-batch check gives the same message.
    with pytest.raises(ValueError, match=match):
        model.validate_data(tf.data.Dataset.from_tensors(bad))
    good = tf.data.Dataset.from_tensors(_batch(2))
    data = good.concatenate(tf.data.Dataset.from_tensors(bad))
    with pytest.raises(InvalidBatchError, match=match) as error:
        model.fit(data, verbose=0)
    message = str(error.value)
    assert (
        f"training batch 2 of epoch 1 (training step 2), position(s) {positions}"
        in message
    ), message
    assert "the update was not applied" in message
    assert int(model.shared_optimizer.iterations.numpy()) == 1
    # evaluate checks every batch as well.
    with pytest.raises(InvalidBatchError, match=match) as error:
        model.evaluate(data, verbose=0)
    assert f"evaluation batch 2, position(s) {positions}" in str(error.value)


def test_empty_dataset_is_an_error_before_training():
    # Issue 15, item 5: Keras alone returns an empty history with a warning.
    model = _model()
    model.compile(jit_compile=False)
    empty = tf.data.Dataset.from_tensors(_batch(2)).take(0)
    with pytest.raises(
        ValueError, match="the data is empty: the dataset yields no batch"
    ):
        model.fit(empty, verbose=0)
    with pytest.raises(ValueError, match="the data is empty"):
        model.fit(np.zeros((0, *SIZE, 3), "float32"), _batch(0)[1], verbose=0)


class _BatchLogKeys(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        self.keys = set(logs)


@pytest.mark.parametrize(
    "tasks, expected",
    [
        (
            ("saliency", "aesthetics"),
            {"loss", "saliency_loss", "aesthetics_loss", "side0_saliency_loss"},
        ),
        (("saliency",), {"loss", "saliency_loss", "side0_saliency_loss"}),
    ],
)
def test_fit_logs_only_losses_of_trained_tasks_and_history_keeps_the_stats(
    tasks, expected
):
    model = _model(side_heads=(("saliency", "stage2", 0.5),))
    model.compile(tasks=tasks, jit_compile=False)
    keys = _BatchLogKeys()
    images, targets, weights = _batch()
    history = model.fit(
        images,
        targets,
        sample_weight=weights,
        batch_size=len(images),
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[keys],
    )
    # What the progress bar shows: no learning rates, weights or NaN counts.
    assert keys.keys == expected
    stats = {f"{t}_weight" for t in aesthal.TASKS}
    stats |= {f"{g}_{kind}" for g in GROUP_NAMES for kind in ("lr", "nonfinite")}
    assert set(history.history) == expected | stats
    assert history.history["shared_lr"] == pytest.approx([1e-3, 1e-3])
    assert history.history["shared_nonfinite"] == [0.0, 0.0]


def test_validation_batches_are_checked_during_fit():
    model = _model()
    model.compile(jit_compile=False)
    good = tf.data.Dataset.from_tensors(_batch(2))
    bad = good.concatenate(tf.data.Dataset.from_tensors(_bad("negative")))
    with pytest.raises(
        InvalidBatchError,
        match=r"negative values .* In evaluation batch 2, position\(s\) \[0\]",
    ):
        model.fit(good, validation_data=bad, verbose=0)
