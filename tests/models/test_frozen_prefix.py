"""Issue 11: the readout head, the centre prior, the frozen trunk prefix and
cached prefix features in AesthalModel; the new ModelConfig fields."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import version1_dict

import aesthal
from aesthal.config import ModelConfig
from aesthal.data import pipeline
from aesthal.training import Trainer

SIZE = (32, 48)


def _config(**kwargs):
    base = dict(
        backbone="tiny",
        input_size=SIZE,
        saliency_head="readout",
        readout_taps=("stage3", "stage4"),
        centre_prior="fixed",
        prior_grid=(4, 6),
    )
    return ModelConfig(**(base | kwargs))


def _batch(seed=0, batch=4):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch, *SIZE, 3)).astype("float32")
    targets = {
        "saliency": rng.uniform(0, 1, (batch, *SIZE, 1)).astype("float32"),
        "aesthetics": rng.uniform(0, 1, (batch, 10)).astype("float32"),
    }
    weights = {t: np.ones(batch, "float32") for t in targets}
    return images, targets, weights


def _compiled(config) -> Trainer:
    """A compiled trainer of a new network (`.network`)."""
    keras.utils.set_random_seed(0)
    model = Trainer(aesthal.build_model(config))
    model.compile(
        optimizers={g: keras.optimizers.SGD(0.1) for g in aesthal.config.GROUPS}
    )
    return model


def test_configs_saved_before_the_new_fields_load_with_defaults():
    old = version1_dict(ModelConfig(backbone="tiny"))
    for key in (
        "saliency_head",
        "readout_taps",
        "readout_channels",
        "readout_blur",
        "readout_learn_blur",
        "centre_prior",
        "prior_grid",
        "frozen_up_to",
        "frozen_batch_norm",
    ):
        old.pop(key)
    config = ModelConfig.from_dict(old)
    assert config.saliency_head == "decoder"
    assert config.centre_prior == "none" and config.frozen_up_to is None
    assert config.frozen_batch_norm is False
    new = _config(frozen_up_to="stage2", readout_blur=1.5, readout_learn_blur=True)
    assert ModelConfig.from_dict(new.to_dict()) == new


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"saliency_head": "sam"}, "saliency_head"),
        ({"frozen_up_to": "stage9"}, "frozen_up_to"),
        ({"readout_taps": ("stage7",)}, "readout_taps"),
        ({"readout_channels": (16, 0)}, "readout_channels"),
        ({"readout_blur": -1.0}, "readout_blur"),
        ({"readout_learn_blur": True}, "initial readout_blur"),
        ({"saliency_head": "decoder"}, "readout head only"),
        ({"centre_prior": "gaussian"}, "centre_prior"),
    ],
)
def test_bad_readout_fields_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _config(**kwargs)


def test_frozen_prefix_is_in_no_group_and_does_not_change_in_a_step():
    model = _compiled(_config(frozen_up_to="stage2"))
    groups = model.variable_groups()
    prefix_ids = {id(v) for v in model.network.backbone_prefix.weights}
    assert prefix_ids and not prefix_ids & {id(v) for g in groups.values() for v in g}
    # stage3 + stage4: conv kernel, BN gamma, beta each.
    assert len(groups["shared"]) == 6
    # The guard copies the trainable BNs' moving stats (stage3, stage4) only.
    assert len(model.network.forward_state_variables()) == 4
    before = [v.numpy().copy() for v in model.network.backbone_prefix.weights]
    shared_before = [v.numpy().copy() for v in groups["shared"]]
    images, targets, weights = _batch()
    model.train_on_batch(images, targets, weights)
    after = [v.numpy() for v in model.network.backbone_prefix.weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert not all(
        np.array_equal(a, v.numpy())
        for a, v in zip(shared_before, groups["shared"], strict=True)
    )


def test_frozen_batch_norm_trains_the_kernels_and_keeps_the_statistics():
    model = _compiled(_config(frozen_up_to="stage2", frozen_batch_norm=True))
    groups = model.variable_groups()
    # stage3 + stage4: only the conv kernels; the BNs' gamma and beta are frozen.
    assert [v.path.split("/")[-1] for v in groups["shared"]] == ["kernel", "kernel"]
    assert model.network.forward_state_variables() == []
    bns = [
        layer
        for layer in model.network.backbone.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    for layer in bns[2:]:  # moving statistics away from 0 and 1
        layer.set_weights([w + 0.5 for w in layer.get_weights()])
    before = [w.copy() for layer in bns for w in layer.get_weights()]
    kernels = [v.numpy().copy() for v in groups["shared"]]
    model.train_on_batch(*_batch())
    after = [w for layer in bns for w in layer.get_weights()]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(
        not np.array_equal(k, v.numpy())
        for k, v in zip(kernels, groups["shared"], strict=True)
    )
    # Without it, the same step moves stage3's moving mean.
    plain = _compiled(_config(frozen_up_to="stage2"))
    bn3 = plain.network.backbone.get_layer("tiny_stage3_bn")
    mean = bn3.moving_mean.numpy().copy()
    plain.train_on_batch(*_batch())
    assert not np.array_equal(mean, bn3.moving_mean.numpy())


def test_whole_trunk_frozen_leaves_the_shared_group_empty_and_still_trains():
    model = _compiled(_config(frozen_up_to="stage4"))
    assert model.variable_groups()["shared"] == []
    assert model.network.forward_state_variables() == []
    assert model.network.cached_taps == ("stage3", "stage4")
    head_before = [
        v.numpy().copy() for v in model.network.saliency_head.trainable_variables
    ]
    images, targets, weights = _batch()
    logs = model.train_on_batch(images, targets, weights, return_dict=True)
    assert np.isfinite(logs["loss"])
    assert int(model.step_counter.count.numpy()) == 1
    changed = [
        not np.array_equal(b, v.numpy())
        for b, v in zip(
            head_before, model.network.saliency_head.trainable_variables, strict=True
        )
    ]
    assert any(changed)


@pytest.mark.parametrize("tap", ["stage2", "stage4"])
def test_cached_features_give_the_loss_and_step_of_the_images(tap):
    images, targets, weights = _batch(seed=1)
    losses, heads = [], []
    for use_cache in (False, True):
        model = _compiled(_config(frozen_up_to=tap))
        x = images
        if use_cache:
            x = {
                t: np.asarray(v).astype(np.float16)
                for t, v in model.network.prefix_features(images).items()
            }
        losses.append(model.test_on_batch(x, targets, weights, return_dict=True))
        model.train_on_batch(x, targets, weights)
        heads.append(
            [v.numpy() for v in model.network.saliency_head.trainable_variables]
        )
    # float16 features: equal to float16 precision.
    np.testing.assert_allclose(losses[0]["loss"], losses[1]["loss"], rtol=2e-3)
    for a, b in zip(*heads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-5)


def test_dict_input_without_the_prefix_taps_is_a_clear_error():
    model = _compiled(_config(frozen_up_to="stage4"))
    with pytest.raises(ValueError, match=r"missing \['stage3'\]"):
        model({"stage4": np.zeros((1, 2, 3, 64), "float32")})


def test_centre_prior_map_is_saved_in_the_keras_file(tmp_path):
    model = _compiled(_config(frozen_up_to="stage4"))
    log_prior = np.log(np.arange(1, 25, dtype=np.float32).reshape(4, 6) / 300.0)
    model.network.set_centre_prior(log_prior)
    path = tmp_path / "m.keras"
    model.network.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(
        loaded.saliency_head.prior.log_prior.numpy(), log_prior
    )
    assert loaded.variable_groups()["shared"] == []
    images, _, _ = _batch()
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0)["saliency"],
        model.predict(images, verbose=0)["saliency"],
        rtol=1e-5,
        atol=1e-9,
    )
    with pytest.raises(ValueError, match=r"\(4, 6\)"):
        model.network.set_centre_prior(np.zeros((3, 3)))


def test_fixation_count_target_hand_worked():
    saliency = tf.fill([3, 4, 1], 1.0 / 12)
    features = {
        "saliency": saliency,
        "saliency_mask": tf.constant(1.0),
        # (0.4, 0.6) -> pixel (0, 1); (2.2, 2.9) twice -> (2, 3); (-1, 9) -> (0, 3).
        "fixations": tf.constant(
            [[0.4, 0.6], [2.2, 2.9], [2.2, 2.9], [-1.0, 9.0]], tf.float32
        ),
    }
    out = pipeline.fixation_count_target(features)["saliency"].numpy()[..., 0]
    expected = np.zeros((3, 4), np.float32)
    expected[0, 1], expected[2, 3], expected[0, 3] = 0.25, 0.5, 0.25
    np.testing.assert_allclose(out, expected)
    no_points = dict(features, fixations=tf.zeros([0, 2]))
    kept = pipeline.fixation_count_target(no_points)["saliency"]
    np.testing.assert_allclose(kept.numpy(), saliency.numpy())
