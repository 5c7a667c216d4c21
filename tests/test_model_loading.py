"""Loading a model reads nothing but the model (issue 24, items 3 and 4).

Each test crafts a `.keras` file (a zip archive: config.json, metadata.json,
model.weights.h5) from a real one, changing only what an attacker would.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pathlib
import sys
import warnings
import zipfile

import h5py
import keras
import numpy as np
import pytest
from conftest import fork_run

import aesthal
from aesthal import predict
from aesthal.config.parts import FLAT_FIELDS
from aesthal.inference import ModelLoadError, Predictor, load_model

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict:
    """A tiny network (tiny and EfficientNet-Lite0 trunks) and its files, the
    tiny one with the compile config its trainer writes (as files written
    before issue 25, when the network was its own trainer, have)."""
    folder = tmp_path_factory.mktemp("saved")
    keras.utils.set_random_seed(0)
    out = {}
    for backbone in ("tiny", "efficientnet_lite0"):
        model = aesthal.build_model(
            aesthal.ModelConfig(backbone=backbone, input_size=(32, 32))
        )
        path = folder / f"{backbone}.keras"
        model.save(path)
        out[backbone] = (model, path)
    trainer = aesthal.Trainer(out["tiny"][0])
    trainer.compile(jit_compile=False)
    compiled = folder / "tiny_compiled.keras"
    _craft(out["tiny"][1], compiled, _with_compile_config(trainer))
    out["tiny"] = (out["tiny"][0], compiled)
    return out


def _with_compile_config(trainer):
    """An `edit` for `_craft`: the network's config.json with `trainer`'s
    compile config, as the class wrote it when it was its own trainer."""
    compile_config = json.loads(json.dumps(trainer.get_compile_config()))

    def edit(config):
        config["compile_config"] = compile_config
        return config

    return edit


def _craft(source: pathlib.Path, target: pathlib.Path, edit=None, **replace) -> None:
    """Copies the archive `source` to `target`, passing config.json through
    `edit(config) -> config` and replacing members by name (`name=bytes`)."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            key = info.filename.replace(".", "_")
            if key in replace:
                data = replace[key]
            elif info.filename == "config.json" and edit is not None:
                data = json.dumps(edit(json.loads(data))).encode()
            dst.writestr(info.filename, data)


def _garbage(path: pathlib.Path) -> pathlib.Path:
    path.write_bytes(b"not weights: reading this file fails\n" * 10)
    return path


@pytest.mark.parametrize(
    "backbone, weights",
    [
        ("tiny", "missing"),  # a path that does not exist: opening it fails
        ("tiny", "garbage.weights.h5"),  # a file that fails to parse
        ("tiny", "imagenet"),  # the tiny trunk has none: resolving it fails
        ("efficientnet_lite0", "garbage.pth"),  # would go to the .pth reader
        ("efficientnet_lite0", "missing.pth"),
    ],
)
def test_weight_files_named_in_the_config_are_never_read(
    saved, tmp_path, backbone, weights
):
    model, source = saved[backbone]
    if weights.startswith("missing"):
        named = str(tmp_path / "no" / "such" / weights)
    elif weights == "imagenet":
        named = weights
    else:
        named = str(_garbage(tmp_path / weights))

    def edit(config):
        config["config"]["load_backbone_weights"] = True
        config["config"]["config"]["trunk"]["weights"] = named
        return config

    crafted = tmp_path / "crafted.keras"
    _craft(source, crafted, edit)
    # The file would fail if opened: building the model it names does.
    config = dataclasses.replace(model.config, backbone_weights=named)
    with pytest.raises((OSError, ValueError)):
        aesthal.build_model(config)
    loaded = load_model(crafted)
    assert loaded.config.backbone_weights == named
    # The archive's own weights, bit for bit.
    for mine, theirs in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    # from_config itself never loads them, whatever the config says.
    again = aesthal.AesthalModel.from_config(
        {"config": config.to_dict(), "load_backbone_weights": True}
    )
    assert again.load_backbone_weights is False


def _system_config(marker: pathlib.Path) -> dict:
    return {
        "module": "os",
        "class_name": "system",
        "config": {"command": f"touch {marker}"},
        "registered_name": None,
    }


def _foreign_configs(marker: pathlib.Path) -> dict[str, dict]:
    return {
        "os.system": _system_config(marker),
        "builtins.eval": {
            "module": "builtins",
            "class_name": "eval",
            "config": {"source": f"open({str(marker)!r}, 'w')"},
            "registered_name": None,
        },
        # A Keras layer that loads the SavedModel it names.
        "keras.layers.TFSMLayer": {
            "module": "keras.layers",
            "class_name": "TFSMLayer",
            "config": {"filepath": str(marker), "call_endpoint": "serve"},
            "registered_name": None,
        },
        "JSON list": [1, 2, 3],
    }


@pytest.mark.parametrize(
    "kind", ["os.system", "builtins.eval", "keras.layers.TFSMLayer", "JSON list"]
)
def test_foreign_top_level_objects_are_refused_before_keras_sees_them(
    saved, tmp_path, kind
):
    marker = tmp_path / "marker"
    crafted = tmp_path / "crafted.keras"
    _craft(saved["tiny"][1], crafted, lambda _: _foreign_configs(marker)[kind])
    with pytest.raises(ModelLoadError) as info:
        load_model(crafted)
    message = str(info.value)
    assert message.startswith(f"{crafted} holds a {kind}, not an AesthalModel")
    assert "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "where, item, shown",
    [
        # A vocabulary-file reader in place of the loss weighting.
        (
            "loss_weighting",
            {
                "module": "keras.layers",
                "class_name": "StringLookup",
                "config": {"vocabulary": "/etc/passwd"},
                "registered_name": None,
            },
            "keras.layers.StringLookup",
        ),
        # A layer that loads the SavedModel it names (Keras would open it).
        (
            "loss_weighting",
            {
                "module": "keras.layers",
                "class_name": "TFSMLayer",
                "config": {"filepath": "/no/such/saved_model"},
                "registered_name": None,
            },
            "keras.layers.TFSMLayer",
        ),
        # An unregistered aesthal name falls back to the module in Keras.
        (
            "loss_weighting",
            {
                "module": "keras.layers",
                "class_name": "TFSMLayer",
                "config": {"filepath": "/nowhere"},
                "registered_name": "aesthal>NoSuchThing",
            },
            "keras.layers.TFSMLayer",
        ),
        # A whole model (trunk weights and all) as an optimizer.
        (
            "optimizers",
            {
                "shared": {
                    "class_name": "AesthalModel",
                    "config": {},
                    "module": "x",
                    "registered_name": "aesthal>AesthalModel",
                }
            },
            "x.AesthalModel",
        ),
        (
            "loss_weighting",
            {
                "module": "keras.optimizers",
                "class_name": "function",
                "config": "deserialize",
                "registered_name": None,
            },
            "keras.optimizers.function",
        ),
    ],
)
def test_compile_configs_name_only_optimizers_and_aesthal_objects(
    saved, tmp_path, where, item, shown
):
    def edit(config):
        config["compile_config"][where] = item
        return config

    crafted = tmp_path / "crafted.keras"
    _craft(saved["tiny"][1], crafted, edit)
    with pytest.raises(ModelLoadError, match="its compile config names a") as info:
        load_model(crafted)
    assert shown in str(info.value) and str(crafted) in str(info.value)


def test_unreadable_configs_are_one_line_errors(saved, tmp_path):
    source = saved["tiny"][1]
    cases = {
        "not_json": b"{not json",
        "deep": b"[" * 200_000 + b"]" * 200_000,
        "binary": bytes(range(256)),
    }
    for name, data in cases.items():
        crafted = tmp_path / f"{name}.keras"
        _craft(source, crafted, config_json=data)
        with pytest.raises(ModelLoadError) as info:
            load_model(crafted)
        assert str(info.value).startswith(f"{crafted}"), name
        assert "\n" not in str(info.value)
    # An archive without config.json.
    crafted = tmp_path / "no_config.keras"
    with zipfile.ZipFile(crafted, "w") as archive:
        archive.writestr("model.weights.h5", b"")
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(crafted)
    # Weights that do not fit the model: Keras's own error, on one line.
    other = tmp_path / "other.keras"
    keras.utils.set_random_seed(1)
    aesthal.build_model(
        aesthal.ModelConfig(backbone="tiny", input_size=(32, 32), decoder_channels=8)
    ).save(other)
    with zipfile.ZipFile(other) as archive:
        weights = archive.read("model.weights.h5")
    crafted = tmp_path / "wrong_weights.keras"
    _craft(source, crafted, model_weights_h5=weights)
    with pytest.raises(ModelLoadError, match="cannot load the model") as info:
        load_model(crafted)
    assert "\n" not in str(info.value)


def test_hdf5_external_links_in_the_weights_are_refused(saved, tmp_path):
    """The weights file is HDF5, which can link to other files: Keras's weight
    store refuses those links (pinned here: a Keras upgrade must keep it)."""
    target = tmp_path / "elsewhere.h5"  # never created: following it would fail
    source = saved["tiny"][1]
    with zipfile.ZipFile(source) as archive:
        buffer = io.BytesIO(archive.read("model.weights.h5"))
    with h5py.File(buffer, "a") as weights:
        first = sorted(weights["layers"])[0]
        del weights["layers"][first]
        weights["layers"][first] = h5py.ExternalLink(str(target), "/vars")
    crafted = tmp_path / "linked.keras"
    _craft(source, crafted, model_weights_h5=buffer.getvalue())
    with pytest.raises(ModelLoadError, match="ExternalLink"):
        load_model(crafted)
    assert not target.exists()


def test_a_corrupt_saved_model_is_a_load_error(saved, tmp_path):
    folder = tmp_path / "saved_model"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"\x08\x01garbage" * 10)
    with pytest.raises(ModelLoadError) as info:
        Predictor(folder)
    assert str(info.value).startswith(f"{folder}: cannot load the SavedModel (")
    assert "\n" not in str(info.value)


@pytest.fixture()
def crafted_system(saved, tmp_path) -> tuple[pathlib.Path, pathlib.Path]:
    marker = tmp_path / "marker"
    crafted = tmp_path / "evil.keras"
    _craft(saved["tiny"][1], crafted, lambda _: _system_config(marker))
    return crafted, marker


def test_predict_command_line_refuses_a_crafted_file_in_one_line(
    crafted_system, tmp_path, capsys
):
    crafted, marker = crafted_system
    (tmp_path / "in").mkdir()
    import cv2

    cv2.imwrite(str(tmp_path / "in" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    for model in (str(crafted), f"{crafted},{crafted}"):  # alone, in an ensemble
        status = predict.main(
            [
                f"--model={model}",
                f"--input={tmp_path / 'in'}",
                f"--output={tmp_path / 'out'}",
                "--no_progress",
            ]
        )
        err = capsys.readouterr().err
        assert status == 2
        assert err.startswith(f"error: {crafted} holds a os.system, not an")
        assert len(err.strip().splitlines()) == 1, err
    assert not marker.exists()


@pytest.mark.parametrize("mode", ["predict", "evaluate", "export"])
def test_run_py_modes_refuse_a_crafted_file_in_one_line(crafted_system, tmp_path, mode):
    crafted, marker = crafted_system
    args = [f"--mode={mode}", f"--model={crafted}", f"--output_dir={tmp_path / 'o'}"]
    if mode == "predict":
        (tmp_path / "in").mkdir()
        import cv2

        cv2.imwrite(str(tmp_path / "in" / "a.png"), np.zeros((8, 8, 3), np.uint8))
        args.append(f"--input={tmp_path / 'in'}")
    if mode == "evaluate":
        args += ["--dataset=synthetic_scenes/tiny", f"--data_dir={tmp_path / 'tfds'}"]
    result = fork_run(
        [sys.executable, str(REPO / "experiments" / "run.py"), *args], timeout=300
    )
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines == [lines[0]] and f"{crafted} holds a os.system" in lines[0]
    assert "Traceback" not in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize(
    "changes, match",
    [
        # A 100000x100000 trunk would take terabytes.
        ({"input_size": [100000, 100000]}, r"each side must be <= 4096 px"),
        ({"decoder_channels": 10**7}, r"decoder_channels=10000000 must be in"),
        (
            {"saliency_head": "readout", "readout_channels": [8] * 10**5},
            r"readout_channels=.* must be 1\.\.8 widths",
        ),
        (
            {"saliency_head": "readout", "readout_blur": 1e9},
            r"readout_blur=1000000000.0 must be in \(0, 512\]",
        ),
        (
            {
                "saliency_head": "readout",
                "centre_prior": "learned",
                "prior_grid": [10**6, 10**6],
            },
            r"prior_grid=.* each in 1\.\.1024",
        ),
        ({"side_heads": [["saliency", "stage2", 1.0]] * 1000}, r"1000 heads"),
    ],
)
def test_crafted_model_sizes_are_refused_before_anything_is_built(
    saved, tmp_path, changes, match
):
    # ModelConfig's bounds (aesthal.config) refuse sizes that would make
    # building the model take gigabytes, before any layer is built.
    def edit(config):
        stored = config["config"]["config"]
        for key, value in changes.items():  # flat names into the parts
            part, field = FLAT_FIELDS.get(key, (None, key))
            (stored if part is None else stored[part])[field] = value
        return config

    crafted = tmp_path / "huge.keras"
    _craft(saved["tiny"][1], crafted, edit)
    with pytest.raises(ModelLoadError, match=match) as info:
        load_model(crafted)
    assert len(str(info.value)) < 1000


@pytest.mark.parametrize("weighting", aesthal.config.LOSS_WEIGHTINGS)
def test_every_compile_config_a_trainer_writes_loads_and_is_ignored(
    tmp_path, weighting
):
    """Files written before issue 25 carry their trainer's compile config: the
    check lets through what training wrote (each loss weighting, learning-rate
    schedules, aesthal's metrics), and loading restores the network alone,
    without a warning, deserialising none of it."""
    keras.utils.set_random_seed(0)
    model = aesthal.build_model(
        aesthal.ModelConfig(backbone="tiny", input_size=(32, 32))
    )
    trainer = aesthal.Trainer(model)
    schedules = keras.optimizers.schedules
    trainer.compile(
        optimizers={
            "shared": keras.optimizers.Adam(schedules.CosineDecay(1e-3, 10)),
            "saliency": keras.optimizers.Adam(
                schedules.PiecewiseConstantDecay([5], [1e-3, 1e-4])
            ),
            "aesthetics": keras.optimizers.SGD(1e-2),
        },
        loss_weighting=weighting,
        saliency_loss={"kld_weight": 1.0, "cc_weight": 0.5, "nss_weight": 0.1},
        metrics={
            "saliency": [aesthal.metrics.SaliencyCC(), aesthal.metrics.SaliencyNSS()],
            "aesthetics": [aesthal.metrics.AestheticsEMD()],
        },
        jit_compile=False,
    )
    plain = tmp_path / "plain.keras"
    model.save(plain)
    path = tmp_path / "model.keras"
    _craft(plain, path, _with_compile_config(trainer))
    with zipfile.ZipFile(path) as archive:
        written = json.loads(archive.read("config.json"))["compile_config"]
    assert written["loss_weighting"]["registered_name"].startswith("aesthal>")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_model(path)
    assert isinstance(loaded, aesthal.AesthalModel)
    assert not hasattr(loaded, "loss_weighting")
    images = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3))
    images = images.astype("float32")
    np.testing.assert_array_equal(
        loaded(images)["saliency"].numpy(), model(images)["saliency"].numpy()
    )
