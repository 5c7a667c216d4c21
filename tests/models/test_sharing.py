"""Issue 13: soft sharing (Duong et al. 2015) and cross-stitch units (Misra et
al. 2016): `ModelConfig.sharing`, the coupling term, the units, the variable
groups, fit / .keras / SavedModel for every mode, balancing and the flags."""

import json
import os
import pathlib
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import background_fixture, fork_run, version1_dict

import aesthal
from aesthal.config import GROUPS, ExperimentConfig, ModelConfig, TrainConfig
from aesthal.models.sharing import CrossStitchUnit, coupling_loss
from aesthal.training import Trainer
from aesthal.trunks import build_backbone, split_backbone_stages

SIZE = (32, 32)
REPO = pathlib.Path(__file__).resolve().parents[2]


def _batch(seed=0, batch=2):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch, *SIZE, 3)).astype("float32")
    targets = {
        "saliency": rng.uniform(0, 1, (batch, *SIZE, 1)).astype("float32") ** 4,
        "aesthetics": rng.integers(1, 50, (batch, 10)).astype("float32"),
    }
    weights = {t: np.ones(batch, "float32") for t in targets}
    return images, targets, weights


def _model(sharing, **kwargs):
    keras.utils.set_random_seed(0)
    return aesthal.build_model(ModelConfig(input_size=SIZE, sharing=sharing, **kwargs))


def _perturb(variables, seed=1, scale=0.1):
    rng = np.random.default_rng(seed)
    for v in variables:
        v.assign(v.numpy() + scale * rng.standard_normal(v.shape).astype("float32"))


# ================================================================== config
def test_config_defaults_and_old_configs_load_as_hard():
    config = ModelConfig()
    assert (config.sharing, config.coupling_weight, config.cross_stitch_taps) == (
        "hard",
        1e-3,
        None,
    )
    old = version1_dict(ModelConfig(input_size=SIZE))
    for key in ("sharing", "coupling_weight", "cross_stitch_taps"):
        old.pop(key)
    assert ModelConfig.from_dict(old) == ModelConfig(input_size=SIZE)
    stitched = ModelConfig(
        sharing="cross_stitch", cross_stitch_taps=["stage3", "stage1"]
    )
    assert stitched.cross_stitch_taps == ("stage1", "stage3")  # trunk order
    assert ModelConfig.from_dict(json.loads(json.dumps(stitched.to_dict()))) == stitched


def test_default_cross_stitch_taps_reach_the_deepest_head_tap():
    assert ModelConfig(sharing="cross_stitch").resolved_cross_stitch_taps == (
        "stage1",
        "stage2",
        "stage3",
        "stage4",
    )
    shallow = ModelConfig(
        sharing="cross_stitch",
        saliency_taps=("stage2",),
        aesthetics_taps=("stage3",),
    )
    assert shallow.resolved_cross_stitch_taps == ("stage1", "stage2", "stage3")
    assert ModelConfig(sharing="soft").resolved_cross_stitch_taps == ()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sharing": "partial"}, "sharing='partial'"),
        ({"sharing": "soft", "coupling_weight": -1.0}, "coupling_weight=-1.0"),
        ({"coupling_weight": 0.5}, "applies to sharing='soft' only"),
        ({"cross_stitch_taps": ("stage1",)}, "sharing='cross_stitch' only"),
        (
            {"sharing": "cross_stitch", "cross_stitch_taps": ("stage9",)},
            "unknown: ['stage9']",
        ),
        ({"sharing": "soft", "tasks": ("saliency",)}, "use sharing='hard'"),
        (
            {"sharing": "cross_stitch", "frozen_up_to": "stage2"},
            "frozen_up_to='stage2' is not supported",
        ),
    ],
)
def test_bad_sharing_configs_are_named(kwargs, message):
    with pytest.raises(ValueError) as error:
        ModelConfig(**kwargs)
    assert message in str(error.value)


def test_a_shared_learning_rate_for_a_soft_model_is_an_error():
    with pytest.raises(ValueError, match="sharing='soft' has no shared variables"):
        ExperimentConfig(
            output_dir="out",
            model=ModelConfig(sharing="soft"),
            train=TrainConfig(group_learning_rates={"shared": 1e-4}),
        )
    # Cross-stitch units are the shared group: a rate for them is fine.
    ExperimentConfig(
        output_dir="out",
        model=ModelConfig(sharing="cross_stitch"),
        train=TrainConfig(group_learning_rates={"shared": 1e-4}),
    )


# ================================================================ building
def test_coupling_loss_value_and_gradient_by_hand():
    s = [tf.Variable([1.0, 2.0]), tf.Variable([[3.0]])]
    a = [tf.Variable([0.0, 0.0]), tf.Variable([[1.0]])]
    with tf.GradientTape() as tape:
        value = coupling_loss(s, a, 0.5)
    # 0.5 * ((1-0)^2 + (2-0)^2 + (3-1)^2) = 0.5 * 9
    assert float(value) == 4.5
    grads = tape.gradient(value, s + a)
    # 2 * 0.5 * (theta_s - theta_a), and its negative for theta_a.
    np.testing.assert_array_equal(grads[0], [1.0, 2.0])
    np.testing.assert_array_equal(grads[1], [[2.0]])
    np.testing.assert_array_equal(grads[2], [-1.0, -2.0])
    np.testing.assert_array_equal(grads[3], [[-2.0]])
    with pytest.raises(ValueError, match="same architecture"):
        coupling_loss(s, a[:1], 1.0)


def test_cross_stitch_unit_mixes_each_channel_by_hand():
    unit = CrossStitchUnit()
    x_s = np.array([[[[1.0, 10.0]]]], "float32")  # [1, 1, 1, 2]
    x_a = np.array([[[[2.0, 20.0]]]], "float32")
    y_s, y_a = unit([x_s, x_a])  # identity at initialisation
    np.testing.assert_array_equal(y_s, x_s)
    np.testing.assert_array_equal(y_a, x_a)
    # channel 0: [[1, 2], [3, 4]]; channel 1: [[0.5, 0], [0, -1]]
    unit.alpha.assign([[[1.0, 2.0], [3.0, 4.0]], [[0.5, 0.0], [0.0, -1.0]]])
    y_s, y_a = unit([x_s, x_a])
    np.testing.assert_allclose(y_s, [[[[1 + 2 * 2, 5.0]]]])
    np.testing.assert_allclose(y_a, [[[[3 + 4 * 2, -20.0]]]])
    misra = CrossStitchUnit(self_weight=0.9)
    misra.build(((None, 1, 1, 3), (None, 1, 1, 3)))
    np.testing.assert_allclose(misra.alpha.numpy()[2], [[0.9, 0.1], [0.1, 0.9]])
    restored = CrossStitchUnit.from_config(misra.get_config())
    assert restored.self_weight == 0.9


def test_split_backbone_stages_compose_to_the_trunk():
    keras.utils.set_random_seed(0)
    trunk = build_backbone("tiny", SIZE)
    stages = split_backbone_stages(trunk, ["stage3", "stage1"])
    assert len(stages) == 3  # images..stage1, stage2..stage3, stage4
    images = _batch()[0]
    whole = trunk(images)
    first = stages[0](images)
    second = stages[1](first["stage1"])
    third = stages[2](second["stage3"])
    assert list(first) == ["stage1"] and list(second) == ["stage2", "stage3"]
    # Exact: the same layers on the same batch, eagerly, on one CPU.
    for tap, value in {**first, **second, **third}.items():
        np.testing.assert_array_equal(value, whole[tap])
    assert len(split_backbone_stages(trunk, ["stage4"])) == 1
    with pytest.raises(ValueError, match="non-empty subset"):
        split_backbone_stages(trunk, ["stage7"])


def test_variable_groups_by_sharing_mode():
    soft = _model("soft")
    groups = soft.variable_groups()
    assert groups["shared"] == []
    ids = {g: {id(v) for v in groups[g]} for g in GROUPS}
    assert {id(v) for v in soft.backbone.trainable_variables} <= ids["saliency"]
    assert {id(v) for v in soft.aesthetics_backbone.trainable_variables} <= ids[
        "aesthetics"
    ]
    # Both trunks start from the same weights.
    for u, v in zip(
        soft.backbone.weights, soft.aesthetics_backbone.weights, strict=True
    ):
        np.testing.assert_array_equal(u.numpy(), v.numpy())
    stitched = _model("cross_stitch", cross_stitch_taps=("stage2", "stage4"))
    shared = stitched.variable_groups()["shared"]
    assert [v.shape for v in shared] == [(32, 2, 2), (64, 2, 2)]  # tiny channels
    assert _model("hard").aesthetics_backbone is None


def test_identity_cross_stitch_reproduces_two_independent_trunks():
    stitched = _model("cross_stitch")
    _perturb(stitched.aesthetics_backbone.trainable_variables)  # trunks differ
    images = _batch()[0]
    outputs = stitched(images)
    for task, trunk in (
        ("saliency", stitched.backbone),
        ("aesthetics", stitched.aesthetics_backbone),
    ):
        alone = _model("hard")
        alone.backbone.set_weights(trunk.get_weights())
        head = f"{task}_head"
        getattr(alone, head).set_weights(getattr(stitched, head).get_weights())
        # Exact: at initialisation alpha is [[1, 0], [0, 1]] and 1 * x + 0 * y
        # is x; the rest is the same layers on the same batch, on one CPU.
        np.testing.assert_array_equal(alone(images)[task], outputs[task])


# ================================================================ training
def test_soft_coupling_step_by_hand():
    """Task weights 0 and SGD: one step moves each trunk weight by exactly
    -lr * 2 * w * (theta_s - theta_a) (the coupling's gradient) and logs the
    coupling's value."""
    model = _model("soft", coupling_weight=0.25)
    _perturb(model.aesthetics_backbone.trainable_variables, scale=0.05)
    before_s = [v.numpy() for v in model.backbone.trainable_variables]
    before_a = [v.numpy() for v in model.aesthetics_backbone.trainable_variables]
    expected_coupling = 0.25 * sum(
        float(np.sum((s - a) ** 2)) for s, a in zip(before_s, before_a, strict=True)
    )
    lr = 0.1
    trainer = Trainer(model)
    trainer.compile(
        optimizers={g: keras.optimizers.SGD(lr) for g in GROUPS},
        loss_weights={"saliency": 0.0, "aesthetics": 0.0},
        jit_compile=False,
    )
    logs = trainer.train_on_batch(*_batch(), return_dict=True)
    assert logs["coupling_loss"] == pytest.approx(expected_coupling, rel=1e-5)
    assert logs["loss"] == pytest.approx(expected_coupling, rel=1e-5)
    for v, s, a in zip(
        model.backbone.trainable_variables, before_s, before_a, strict=True
    ):
        np.testing.assert_allclose(v.numpy(), s - lr * 0.5 * (s - a), atol=1e-6)
    for v, s, a in zip(
        model.aesthetics_backbone.trainable_variables, before_s, before_a, strict=True
    ):
        np.testing.assert_allclose(v.numpy(), a + lr * 0.5 * (s - a), atol=1e-6)


def test_soft_steps_are_counted_without_a_shared_optimizer():
    from aesthal.training.callbacks import StopOnNonFinite

    model = Trainer(_model("soft"))
    model.compile(jit_compile=False)
    history = model.fit(
        *_batch()[:1],
        _batch()[1],
        sample_weight=_batch()[2],
        epochs=3,
        verbose=0,
        callbacks=[StopOnNonFinite()],
    )
    assert int(model.step_counter.count.numpy()) == 3
    assert int(model.shared_optimizer.iterations.numpy()) == 0  # no variables
    assert int(model.saliency_optimizer.iterations.numpy()) == 3
    assert len(history.history["coupling_loss"]) == 3


@pytest.mark.parametrize("sharing", ["soft", "cross_stitch"])
def test_fit_keras_round_trip_and_saved_model(sharing, tmp_path):
    def trainer():
        model = Trainer(_model(sharing))
        model.compile(
            optimizers={
                "shared": keras.optimizers.Adam(1e-3),
                "aesthetics": keras.optimizers.SGD(0.1, momentum=0.9),
                "saliency": keras.optimizers.Adam(1e-2),
            },
            jit_compile=False,
        )
        return model

    model = trainer()
    batch = _batch()
    alpha_before = [v.numpy() for v in model.variable_groups()["shared"]]
    history = model.fit(batch[0], batch[1], sample_weight=batch[2], epochs=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    for before, v in zip(alpha_before, model.variable_groups()["shared"], strict=True):
        assert np.max(np.abs(v.numpy() - before)) > 0  # the units learn
    path = tmp_path / "model.keras"
    model.network.save(path)
    network = keras.models.load_model(path)
    assert network.config.sharing == sharing
    images = batch[0]
    expected = model.predict(images, verbose=0)
    got = network.predict(images, verbose=0)
    for task in ("saliency", "aesthetics"):
        # Exact: the same weights on the same batch, on one CPU.
        np.testing.assert_array_equal(got[task], expected[task])
    # The training state travels in the trainer's weights file (a backup).
    model.save_weights(tmp_path / "trainer.weights.h5")
    loaded = trainer()
    loaded.load_weights(tmp_path / "trainer.weights.h5")
    for group in GROUPS:
        a = model.group_optimizers[group].variables
        b = loaded.group_optimizers[group].variables
        for u, v in zip(a, b, strict=True):
            np.testing.assert_array_equal(u.numpy(), v.numpy())
    # Training goes on from the same state in both.
    loaded.fit(batch[0], batch[1], sample_weight=batch[2], epochs=1, verbose=0)
    model.fit(batch[0], batch[1], sample_weight=batch[2], epochs=1, verbose=0)
    for u, v in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_allclose(u.numpy(), v.numpy(), atol=1e-6)
    exported = aesthal.export_saved_model(model.network, tmp_path / "saved_model")
    served = tf.saved_model.load(exported).signatures["predict_at_model_size"](
        tf.constant(images)
    )
    expected = model.predict(images, verbose=0)
    for task in ("saliency", "aesthetics"):
        np.testing.assert_allclose(served[task], expected[task], atol=1e-6)


# =============================================================== balancing
def test_gradient_balancing_needs_shared_parameters():
    model = Trainer(_model("soft"))
    for method in ("gradnorm", "pcgrad", "cagrad"):
        with pytest.raises(ValueError, match="sharing='soft' has none"):
            model.compile(loss_weighting=method)


@pytest.mark.parametrize("method", ["gradnorm", "pcgrad"])
def test_gradient_balancing_acts_on_the_cross_stitch_units(method):
    model = Trainer(_model("cross_stitch", cross_stitch_taps=("stage2", "stage4")))
    model.compile(
        optimizers={g: keras.optimizers.SGD(0.01) for g in GROUPS},
        loss_weighting=method,
        jit_compile=False,
    )
    shared = model.variable_groups()["shared"]
    before = [v.numpy() for v in shared]
    trunks = [v.numpy() for v in model.network.aesthetics_backbone.trainable_variables]
    batch = _batch()
    model.fit(batch[0], batch[1], sample_weight=batch[2], epochs=1, verbose=0)
    for v, b in zip(shared, before, strict=True):
        assert np.max(np.abs(v.numpy() - b)) > 0
    moved = [
        np.max(np.abs(v.numpy() - b))
        for v, b in zip(
            model.network.aesthetics_backbone.trainable_variables, trunks, strict=True
        )
    ]
    assert max(moved) > 0
    if method == "gradnorm":  # the task weights moved, and still sum to 2
        weights = model.loss_weighting.task_weights.numpy()
        assert abs(weights[0] - 1.0) > 1e-6
        assert float(np.sum(weights)) == pytest.approx(2.0, rel=1e-5)


# =================================================================== flags
_PARSE = r"""
import json, sys
from absl import flags
from aesthal.cli import common, train
out = []
for args in json.loads(sys.argv[1]):
    flags.FLAGS.unparse_flags()
    common.parse(["aesthal train", "--output_dir=out", *args], train)
    try:
        sharing = train.experiment_config().model.task_sharing
        taps = sharing.cross_stitch_taps
        out.append({
            "sharing": sharing.mode,
            "coupling_weight": sharing.coupling_weight,
            "cross_stitch_taps": None if taps is None else list(taps),
        })
    except Exception as error:
        out.append(str(error))
print(json.dumps(out))
"""


@background_fixture
def sharing_flags_parsed(tmp_path):
    """The script above on `aesthal train`'s sharing flags, in the background from the
    session's start (conftest.background_fixture)."""
    cases = [
        ["--sharing=soft", "--coupling_weight=0.01"],
        ["--sharing=cross_stitch", "--cross_stitch_taps=stage2,stage3"],
        [],
        ["--sharing=soft", "--lr_shared=1e-4"],
    ]
    return fork_run(  # forked from conftest's fork server
        [
            sys.executable,
            "-c",
            _PARSE,
            json.dumps(cases),
        ],
        timeout=300,
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )


@pytest.mark.slow
def test_run_flags_map_to_the_sharing_fields(sharing_flags_parsed):
    result = sharing_flags_parsed
    assert result.returncode == 0, result.stderr[-3000:]
    soft, stitched, hard, bad = json.loads(result.stdout.strip().splitlines()[-1])
    assert (soft["sharing"], soft["coupling_weight"]) == ("soft", 0.01)
    assert stitched["sharing"] == "cross_stitch"
    assert stitched["cross_stitch_taps"] == ["stage2", "stage3"]
    assert (hard["sharing"], hard["coupling_weight"], hard["cross_stitch_taps"]) == (
        "hard",
        1e-3,
        None,
    )
    assert "drop it (--lr_shared)" in bad


def test_init_from_fills_both_per_task_trunks(tmp_path):
    from aesthal.training.runner import _initialise_trunk

    source = _model("hard")
    _perturb(source.backbone.trainable_variables, seed=3)
    source.save(tmp_path / "source.keras")
    target = _model("soft")
    _initialise_trunk(target, str(tmp_path / "source.keras"))
    for trunk in (target.backbone, target.aesthetics_backbone):
        for u, v in zip(trunk.weights, source.backbone.weights, strict=True):
            np.testing.assert_array_equal(u.numpy(), v.numpy())
