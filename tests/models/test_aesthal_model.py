"""Tests for AesthalModel: outputs, variable groups, config round trip, bad input."""

import keras
import numpy as np
import pytest

import aesthal
from aesthal.config import TAP_NAMES, ModelConfig
from aesthal.training import Trainer
from aesthal.training.variable_groups import check_partition

SIZE = (32, 48)


def _images(batch=2, size=SIZE, seed=0):
    return (
        np.random.default_rng(seed).uniform(0, 255, (batch, *size, 3)).astype("float32")
    )


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return aesthal.build_model(
        ModelConfig(
            input_size=SIZE,
            saliency_taps=("stage1", "stage3", "stage4"),
            side_heads=(("saliency", "stage2", 0.5), ("aesthetics", "stage3", 0.2)),
        )
    )


def test_outputs_follow_the_contract(model):
    out = model.predict(_images(3), verbose=0)
    assert set(out) == {"saliency", "aesthetics"}  # no side heads, no log density
    assert out["saliency"].shape == (3, *SIZE, 1)
    assert out["aesthetics"].shape == (3, 10)
    assert (out["saliency"] >= 0).all()
    np.testing.assert_allclose(out["saliency"].sum((1, 2, 3)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out["aesthetics"].sum(-1), 1.0, rtol=1e-5)


def test_log_density_output_is_the_log_of_the_density():
    model = aesthal.build_model(ModelConfig(input_size=SIZE, output_log_density=True))
    out = model(_images())
    np.testing.assert_allclose(
        np.exp(out["saliency_log_density"].numpy()), out["saliency"].numpy(), rtol=1e-5
    )


def test_config_round_trip_gives_equal_outputs(model):
    clone = aesthal.AesthalModel.from_config(model.get_config())
    assert clone.config == model.config
    clone.set_weights(model.get_weights())
    images = _images()
    for key, value in model(images).items():
        np.testing.assert_allclose(clone(images)[key], value, rtol=1e-6)


def _check_groups(model):
    groups = model.variable_groups()
    check_partition(groups, model.trainable_variables)
    assert {id(v) for v in groups["shared"]} == {
        id(v) for v in model.backbone.trainable_variables
    }
    for task in ("saliency", "aesthetics"):
        owned = {id(v) for v in getattr(model, f"{task}_head").trainable_variables}
        assert owned and owned <= {id(v) for v in groups[task]}
    return groups


def test_partition_puts_side_heads_with_their_task(model):
    groups = _check_groups(model)
    side_saliency = {id(v) for v in model.side_heads[0].trainable_variables}
    side_aesthetics = {id(v) for v in model.side_heads[1].trainable_variables}
    assert side_saliency <= {id(v) for v in groups["saliency"]}
    assert side_aesthetics <= {id(v) for v in groups["aesthetics"]}


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["mobilenet_v2", "vgg16", "resnet50"])
def test_partition_for_application_trunks(backbone):
    taps = TAP_NAMES[backbone]
    model = aesthal.build_model(
        ModelConfig(
            backbone=backbone,
            input_size=(32, 32),
            side_heads=(("saliency", taps[1], 1.0), ("aesthetics", taps[2], 1.0)),
        )
    )
    groups = _check_groups(model)
    assert len(groups["shared"]) > 20
    trainer = Trainer(model)
    trainer.compile(loss_weighting="uncertainty")
    groups = trainer.variable_groups()
    check_partition(
        groups, model.trainable_variables + trainer.loss_weighting.trainable_variables
    )
    out = model(_images(1, (32, 32)))
    np.testing.assert_allclose(out["saliency"].numpy().sum(), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "shape, match",
    [
        ((2, 32, 48), r"must be RGB \[B, 32, 48, 3\]"),
        ((2, 32, 48, 1), r"must be RGB \[B, 32, 48, 3\]"),
        ((2, 40, 48, 3), "images are 40x48 but the model input is 32x48"),
    ],
)
def test_bad_image_shapes_raise(model, shape, match):
    with pytest.raises(ValueError, match=match):
        model(np.zeros(shape, np.float32))
