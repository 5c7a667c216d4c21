"""`aesthal.inference`: `Predictor`, safe loading, no pickle."""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import aesthal
from aesthal.export import INPUT_SIZE_SIGNATURE, MODEL_SIZE_SIGNATURE, serving_function
from aesthal.inference import Predictor, load_model, predict_images

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model() -> aesthal.AesthalModel:
    keras.utils.set_random_seed(0)
    return aesthal.build_model(aesthal.ModelConfig(input_size=(32, 48)))


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (40, 50, 3), dtype=np.uint8),
        rng.integers(0, 256, (17, 90, 3), dtype=np.uint8),
        rng.integers(0, 256, (40, 50, 3), dtype=np.uint8),
        rng.integers(0, 256, (64, 33, 3), dtype=np.uint8),
        rng.integers(0, 256, (5, 7, 3), dtype=np.uint8),
    ]


def test_mixed_sizes_batched_equal_the_serving_function_one_by_one(model):
    images = _images()
    serve = serving_function(model)
    predictor = Predictor(model)
    outputs = list(predictor.predict_many(images, batch_size=3))
    assert len(outputs) == len(images)
    for image, out in zip(images, outputs, strict=True):
        assert out["saliency"].shape == image.shape[:2]
        assert out["saliency"].dtype == np.float32
        np.testing.assert_allclose(out["saliency"].sum(), 1.0, rtol=1e-5)
        assert out["saliency"].min() >= 0
        np.testing.assert_allclose(out["aesthetics"].sum(), 1.0, rtol=1e-5)
        expected = serve(tf.constant(image[None]))
        np.testing.assert_allclose(
            out["saliency"], expected["saliency"][0, ..., 0], rtol=1e-4, atol=1e-8
        )
        np.testing.assert_allclose(
            out["aesthetics"], expected["aesthetics"][0], rtol=1e-4, atol=1e-7
        )
        np.testing.assert_allclose(
            out["aesthetics_mean"], out["aesthetics"] @ np.arange(1, 11), rtol=1e-5
        )
        assert 1.0 <= out["aesthetics_mean"] <= 10.0


def test_batch_size_does_not_change_predictions(model):
    images = _images()
    one = predict_images(model, images, batch_size=1)
    four = predict_images(Predictor(model), images, batch_size=4)
    for a, b in zip(one, four, strict=True):
        np.testing.assert_allclose(a["saliency"], b["saliency"], rtol=1e-4, atol=1e-8)
        np.testing.assert_allclose(a["aesthetics"], b["aesthetics"], rtol=1e-4)


def _count_calls(predictor: Predictor, attribute: str) -> list[int]:
    """Wraps `predictor.<attribute>` to record the batch size of each call."""
    calls: list[int] = []
    wrapped = getattr(predictor, attribute)

    def counting(images):
        calls.append(int(images.shape[0]))
        return wrapped(images)

    setattr(predictor, attribute, counting)
    return calls


def _assert_same_outputs(outputs, expected):
    assert len(outputs) == len(expected)
    for out, want in zip(outputs, expected, strict=True):
        assert out["saliency"].shape == want["saliency"].shape
        np.testing.assert_allclose(
            out["saliency"], want["saliency"], rtol=1e-4, atol=1e-8
        )
        np.testing.assert_allclose(
            out["aesthetics"], want["aesthetics"], rtol=1e-4, atol=1e-7
        )
        np.testing.assert_allclose(
            out["aesthetics_mean"], want["aesthetics_mean"], rtol=1e-5
        )


@pytest.fixture(scope="module")
def trained_model() -> aesthal.AesthalModel:
    """A model fitted a few steps, so that its maps are far from uniform."""
    keras.utils.set_random_seed(0)
    model = aesthal.build_model(aesthal.ModelConfig(input_size=(32, 48)))
    trainer = aesthal.Trainer(model)
    trainer.compile(
        optimizers={
            group: keras.optimizers.Adam(0.03)
            for group in ("shared", "saliency", "aesthetics")
        },
        jit_compile=False,
    )
    rng = np.random.default_rng(0)
    trainer.fit(
        rng.integers(0, 256, (2, 32, 48, 3)).astype("float32"),
        {
            "saliency": rng.uniform(size=(2, 32, 48, 1)).astype("float32") ** 8,
            "aesthetics": rng.uniform(size=(2, 10)).astype("float32"),
        },
        epochs=10,
        verbose=0,
    )
    return model


@pytest.fixture(scope="module")
def saved_models(trained_model, tmp_path_factory) -> dict[str, pathlib.Path]:
    """The model as a SavedModel now, and as one with only serving_default."""
    model = trained_model
    folder = tmp_path_factory.mktemp("saved")
    aesthal.export_saved_model(model, folder / "new")
    # What export_saved_model wrote before predict_at_model_size existed.
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        serving_function(model),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    archive.write_out(str(folder / "old"), verbose=False)
    return {"new": folder / "new", "old": folder / "old"}


def _serving_default_one_by_one(path, images):
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    results = []
    for image in images:
        out = serve(images=tf.constant(image[None]))
        results.append(
            {
                "saliency": out["saliency"].numpy()[0, ..., 0],
                "aesthetics": out["aesthetics"].numpy()[0],
                "aesthetics_mean": out["aesthetics_mean"].numpy()[0],
            }
        )
    return results


def test_saved_model_batches_mixed_sizes_like_serving_default(saved_models):
    images = _images()  # 5 images of 4 sizes, no two neighbours alike
    loaded = tf.saved_model.load(str(saved_models["new"]))
    assert {MODEL_SIZE_SIGNATURE, INPUT_SIZE_SIGNATURE} <= set(loaded.signatures)
    predictor = Predictor(saved_models["new"])
    assert predictor.input_size == (32, 48)
    calls = _count_calls(predictor, "_forward")
    outputs = list(predictor.predict_many(images, batch_size=3))
    assert calls == [3, 2]  # mixed sizes share full batches
    expected = _serving_default_one_by_one(saved_models["new"], images)
    # Maps far from flat, so that a wrong resize could not pass unseen.
    assert all(e["saliency"].std() / e["saliency"].mean() > 0.02 for e in expected)
    _assert_same_outputs(outputs, expected)
    # predict_batch and predict take the same path.
    batch = predictor.predict_batch(np.stack([images[0], images[2]]))
    np.testing.assert_allclose(
        batch["saliency"][1], outputs[2]["saliency"], rtol=1e-4, atol=1e-8
    )


def test_old_saved_model_without_model_size_signature_still_works(
    saved_models, trained_model
):
    assert set(tf.saved_model.load(str(saved_models["old"])).signatures) == {
        "serving_default"
    }
    images = _images()
    images = [images[0], images[2], images[1], images[3], images[4]]  # A A B C D
    predictor = Predictor(saved_models["old"])
    assert predictor.input_size is None
    calls = _count_calls(predictor, "_serve")
    outputs = list(predictor.predict_many(images, batch_size=3))
    assert calls == [2, 1, 1, 1]  # only neighbours of the same size share a call
    expected = _serving_default_one_by_one(saved_models["old"], images)
    _assert_same_outputs(outputs, expected)
    # The same maps as the in-memory model and the new SavedModel.
    _assert_same_outputs(list(Predictor(trained_model).predict_many(images)), expected)
    _assert_same_outputs(
        list(Predictor(saved_models["new"]).predict_many(images)), expected
    )


def test_predict_one_gray_image_equals_its_rgb_copy(model):
    gray = np.random.default_rng(1).integers(0, 256, (30, 20), dtype=np.uint8)
    predictor = Predictor(model)
    a, b = predictor.predict(gray), predictor.predict(np.stack([gray] * 3, -1))
    # The same input, the same batch size: equal but for threading's rounding.
    np.testing.assert_allclose(a["saliency"], b["saliency"], rtol=1e-6, atol=1e-12)
    assert a["saliency"].shape == (30, 20)


def test_keras_file_round_trip_predicts_the_same(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    image = _images()[1]
    np.testing.assert_allclose(
        Predictor(path).predict(image)["saliency"],
        Predictor(model).predict(image)["saliency"],
        rtol=1e-5,
        atol=1e-9,
    )


def test_bad_model_paths_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file"):
        Predictor(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="expected a .keras file"):
        Predictor(tmp_path / "weights.h5")
    with pytest.raises(ValueError, match="without saved_model.pb"):
        Predictor(tmp_path)
    with pytest.raises(ValueError, match="batch_size"):
        list(Predictor.__new__(Predictor).predict_pairs([], batch_size=0))


def test_keras_files_load_in_safe_mode(tmp_path):
    # A Lambda layer's bytecode is what safe mode refuses to deserialise.
    unsafe = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2)])
    path = tmp_path / "unsafe.keras"
    unsafe.save(path)
    # Refused before Keras deserialises anything (safe mode stays on behind).
    with pytest.raises(ValueError, match="holds a keras.Sequential, not an Aesthal"):
        load_model(path)
    plain = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    plain.save(tmp_path / "plain.keras")
    with pytest.raises(ValueError, match="not an AesthalModel"):
        load_model(tmp_path / "plain.keras")


def test_nothing_in_the_project_uses_pickle():
    pattern = re.compile(
        r"\b(import (c?pickle|dill|cloudpickle|joblib|shelve)|"
        r"from (c?pickle|dill|cloudpickle|joblib|shelve) import|"
        r"allow_pickle\s*=\s*True|safe_mode\s*=\s*False|"
        r"enable_unsafe_deserialization)"
    )
    sources = [
        p
        for folder in ("aesthal", "experiments")
        for p in (REPO / folder).rglob("*.py")
    ]
    assert len(sources) > 20
    offenders = [
        f"{p.relative_to(REPO)}:{n}: {line.strip()}"
        for p in sources
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


# ------------------------------------------------------------------ ensembles
def test_ensemble_map_is_the_mean_of_its_members_maps(model, trained_model):
    images = _images()
    one = list(Predictor(model).predict_many(images))
    two = list(Predictor(trained_model).predict_many(images))
    ensemble = aesthal.Ensemble([model, trained_model])
    assert ensemble.tasks == ("saliency", "aesthetics")
    outputs = list(ensemble.predict_many(images, batch_size=2))
    assert len(outputs) == len(images)
    for a, b, out in zip(one, two, outputs, strict=True):
        # The two members' maps differ (by 20 to 30 % of their peak), so the
        # mean is neither of them.
        assert np.abs(a["saliency"] - b["saliency"]).max() > 0.05 * a["saliency"].max()
        np.testing.assert_allclose(
            out["saliency"], (a["saliency"] + b["saliency"]) / 2, rtol=1e-5, atol=1e-9
        )
        np.testing.assert_allclose(out["saliency"].sum(), 1.0, rtol=1e-5)
        want = (a["aesthetics"] + b["aesthetics"]) / 2
        np.testing.assert_allclose(out["aesthetics"], want, rtol=1e-5)
        np.testing.assert_allclose(
            out["aesthetics_mean"], want @ np.arange(1, 11), rtol=1e-5
        )


def test_mirror_averages_the_mirrored_prediction_back(trained_model):
    image = _images()[3]  # 64x33: not symmetric
    plain = Predictor(trained_model)
    direct = plain.predict(image)["saliency"]
    flipped = plain.predict(image[:, ::-1])["saliency"][:, ::-1]
    # The model is not symmetric (the maps differ by 29 % of their peak).
    assert np.abs(direct - flipped).max() > 0.05 * direct.max()
    mirrored = aesthal.Ensemble([trained_model], mirror=True)
    out = mirrored.predict(image)["saliency"]
    np.testing.assert_allclose(out, (direct + flipped) / 2, rtol=1e-5, atol=1e-9)
    # So the mirror image's map is this map mirrored, to float rounding.
    np.testing.assert_allclose(
        mirrored.predict(image[:, ::-1])["saliency"], out[:, ::-1], rtol=1e-4, atol=1e-9
    )


def test_ensemble_of_a_saved_model_and_a_keras_file(
    trained_model, saved_models, tmp_path
):
    path = tmp_path / "m.keras"
    trained_model.save(path)
    images = _images()[:2]
    want = [o["saliency"] for o in Predictor(trained_model).predict_many(images)]
    ensemble = aesthal.make_predictor(f"{saved_models['new']},{path}")
    assert isinstance(ensemble, aesthal.Ensemble)
    assert len(ensemble.members) == 2
    for out, expected in zip(ensemble.predict_many(images), want, strict=True):
        np.testing.assert_allclose(out["saliency"], expected, rtol=1e-4, atol=1e-9)


def test_make_predictor_and_ensemble_errors(model, tmp_path):
    path = tmp_path / "m.keras"
    model.save(path)
    single = aesthal.make_predictor(str(path))
    assert type(single) is Predictor
    assert isinstance(aesthal.make_predictor(path, mirror=True), aesthal.Ensemble)
    with pytest.raises(FileNotFoundError, match="nope.keras"):
        aesthal.make_predictor(f"{path},{tmp_path / 'nope.keras'}")
    with pytest.raises(ValueError, match="no model given"):
        aesthal.make_predictor(" , ")
    with pytest.raises(ValueError, match="at least one model"):
        aesthal.Ensemble([])
    keras.utils.set_random_seed(0)
    saliency_only = aesthal.build_model(
        aesthal.ModelConfig(input_size=(32, 48), tasks=("saliency",))
    )
    with pytest.warns(UserWarning, match="left out"):
        with pytest.raises(ValueError, match="different tasks"):
            aesthal.Ensemble([model, saliency_only])


def test_predict_command_line_takes_an_ensemble_and_mirror(
    model, trained_model, tmp_path, capsys
):
    import csv

    import cv2

    from aesthal import predict

    paths = []
    for name, m in (("a", model), ("b", trained_model)):
        paths.append(tmp_path / f"{name}.keras")
        m.save(paths[-1])
    image = _images()[3]
    (tmp_path / "in").mkdir()
    assert cv2.imwrite(str(tmp_path / "in" / "x.png"), image[..., ::-1])
    status = predict.main(
        [
            f"--model={paths[0]},{paths[1]}",
            "--mirror",
            f"--input={tmp_path / 'in'}",
            f"--output={tmp_path / 'out'}",
            "--crops=9:16",
            "--no_progress",
        ]
    )
    assert status == 0, capsys.readouterr().err
    with open(tmp_path / "out" / "predictions.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    want = aesthal.Ensemble([model, trained_model], mirror=True).predict(image)
    alone = Predictor(model).predict(image)
    assert abs(want["aesthetics_mean"] - alone["aesthetics_mean"]) > 1e-3
    np.testing.assert_allclose(
        float(row["mean_score"]), want["aesthetics_mean"], atol=1e-4
    )
    # The heaviest 9:16 window of the ensemble's map, up to float rounding (the
    # command's and this prediction may differ in the last bits, which can
    # tip a near tie to a neighbouring window of the same mass).
    saliency = want["saliency"].astype(np.float64)
    top, left, height, width = (
        int(row[f"crop_9x16_{f}"]) for f in ("top", "left", "height", "width")
    )
    assert (height, width) == aesthal.crop.window_size(saliency.shape, "9:16")
    masses = aesthal.crop.window_masses(
        aesthal.crop.summed_area_table(saliency), height, width
    )
    assert masses[top, left] >= masses.max() - 1e-5


# --------------------------------------------------------------- multi-scale
def _rebuilt_by_hand(model, input_size):
    """The lead's recipe: build at the new size, call once, copy the weights."""
    config = dataclasses.replace(model.config, input_size=input_size)
    rebuilt = aesthal.build_model(config)
    rebuilt(np.zeros((1, *input_size, 3), np.float32))
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def test_predictor_at_another_input_size_is_the_model_rebuilt_there(
    trained_model, tmp_path
):
    images = _images()
    want = list(
        Predictor(_rebuilt_by_hand(trained_model, (48, 72))).predict_many(images)
    )
    at_48 = Predictor(trained_model, input_size=(48, 72))
    assert at_48.input_size == (48, 72)
    assert at_48.model is not trained_model
    assert trained_model.config.input_size == (32, 48)  # the original is unchanged
    # Batches of 3 against batches of 8: the same maps to float rounding (the
    # batch size changes the order of the sums; they once differed by 1.2e-7).
    outputs = list(at_48.predict_many(images, batch_size=3))
    _assert_same_outputs(outputs, want)
    # A .keras file is rebuilt the same way.
    path = tmp_path / "m.keras"
    trained_model.save(path)
    _assert_same_outputs(
        list(Predictor(path, input_size=(48, 72)).predict_many(images)), want
    )
    # The size matters: the maps at 32x48 are other maps.
    original = list(Predictor(trained_model).predict_many(images))
    assert (
        min(
            np.abs(a["saliency"] - b["saliency"]).max() / a["saliency"].max()
            for a, b in zip(original, outputs, strict=True)
        )
        > 0.01
    )
    # Its own size is the model itself.
    assert Predictor(trained_model, input_size=(32, 48)).model is trained_model


def test_many_members_do_not_warn_of_retracing(trained_model):
    """Each member traces its functions once; 3 models x 3 scales used to make
    tf.function warn of "excessive retracing" (it counted every predictor's
    traces together, the functions sharing their code)."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    tf.get_logger().addHandler(handler)
    try:
        ensemble = aesthal.Ensemble(
            [trained_model] * 3, mirror=True, scales=(1.0, 1.5, 2.0)
        )
        image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), np.uint8)
        ensemble.predict(image)
        ensemble.predict(image[:36, :50])  # another size: one more trace each
    finally:
        tf.get_logger().removeHandler(handler)
    retracing = [r.getMessage() for r in records if "retracing" in r.getMessage()]
    assert len(ensemble.components) == 9
    assert retracing == []


@pytest.mark.parametrize("mirror", [False, True])
def test_multi_scale_ensemble_is_the_mean_of_the_per_scale_maps(trained_model, mirror):
    images = _images()[:4]
    views = [(images, False)]
    if mirror:
        views.append(([im[:, ::-1] for im in images], True))
    parts = []
    for size in ((32, 48), (48, 72)):  # scales 1 and 1.5 of 32x48
        predictor = Predictor(trained_model, input_size=size)
        for view, mirrored in views:
            outs = list(predictor.predict_many(view))
            if mirrored:
                for out in outs:
                    out["saliency"] = out["saliency"][:, ::-1]
            parts.append(outs)
    assert len(parts) == (4 if mirror else 2)
    ensemble = aesthal.Ensemble([trained_model], mirror=mirror, scales=(1, 1.5))
    assert ensemble.scales == (1.0, 1.5)
    assert "scales 1, 1.5" in ensemble.source
    outputs = list(ensemble.predict_many(images, batch_size=3))
    for i, out in enumerate(outputs):
        saliency = np.mean([p[i]["saliency"] for p in parts], axis=0)
        aesthetics = np.mean([p[i]["aesthetics"] for p in parts], axis=0)
        np.testing.assert_allclose(out["saliency"], saliency, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(out["saliency"].sum(), 1.0, rtol=1e-5)
        np.testing.assert_allclose(out["aesthetics"], aesthetics, rtol=1e-5)
        np.testing.assert_allclose(
            out["aesthetics_mean"], aesthetics @ np.arange(1, 11), rtol=1e-5
        )


def test_multi_scale_errors(trained_model, saved_models):
    path = str(saved_models["new"])
    # A SavedModel runs at its exported size only, alone or in an ensemble.
    for make in (
        lambda: Predictor(path, input_size=(48, 72)),
        lambda: aesthal.Ensemble([path], scales=(1, 1.5)),
        lambda: aesthal.Ensemble([str(saved_models["old"])], scales=(1.5,)),
    ):
        with pytest.raises(ValueError, match="model.keras") as info:
            make()
        assert "saved" in str(info.value) and "a SavedModel runs at the size" in str(
            info.value
        )
    assert Predictor(path, input_size=(32, 48)).input_size == (32, 48)
    assert aesthal.Ensemble([path], scales=[1.0]).source == path
    for scales, match in [
        ((0,), "scale 0 is not a finite number > 0"),
        ((1, float("inf")), "scale inf is not"),
        ((1, 1.5, 1.5), "scale 1.5 is given twice"),
        ((), "no scale given"),
        ("", "no scale given"),
        ("1,x", "scale 'x' is not a number"),
        ((0.5,), r"would run at 16x24, but each side must be >= 32"),
        # Issue 24, item 9: a 240x320 model at scale 100 would need 24000x32000.
        ((1, 100), r"scale 100 is outside 0\.25\.\.4: give factors"),
        ("1,4.5", r"scale 4\.5 is outside 0\.25\.\.4"),
        ((0.2,), r"scale 0\.2 is outside 0\.25\.\.4"),
    ]:
        with pytest.raises(ValueError, match=match):
            aesthal.Ensemble([trained_model], scales=scales)
    # The ends of the range are allowed (4 x 32x48 = 128x192).
    assert [
        c.input_size for c in aesthal.Ensemble([trained_model], scales=(4,)).components
    ] == [(128, 192)]
    for size, match in [
        ((31, 48), "each side must be >= 32"),
        ((4097, 64), "each side must be <= 4096 px"),
        ((2049, 2049), "4198401 px is too many"),
    ]:
        with pytest.raises(ValueError, match=match) as info:
            Predictor(trained_model, input_size=size)
        assert "allowed: 32..4096 px a side and at most 4194304 px" in str(info.value)
    with pytest.raises(ValueError, match="two ints"):
        Predictor(trained_model, input_size=(32.5, 48))
    # The same check for a model's own size (so for a .keras file's too).
    with pytest.raises(ValueError, match=r"ModelConfig\.input_size=\(40000, 40000\)"):
        aesthal.ModelConfig(input_size=(40000, 40000))


def test_make_predictor_takes_scales_as_a_comma_string(trained_model, tmp_path):
    path = tmp_path / "m.keras"
    trained_model.save(path)
    assert type(aesthal.make_predictor(path, scales="1")) is Predictor
    predictor = aesthal.make_predictor(str(path), scales=" 1, 1.5")
    assert isinstance(predictor, aesthal.Ensemble)
    assert predictor.scales == (1.0, 1.5)
    assert predictor.source == f"{path} (scales 1, 1.5)"
    assert [c.input_size for c in predictor.components] == [(32, 48), (48, 72)]
    image = _images()[3]
    want = aesthal.Ensemble([trained_model], scales=(1, 1.5)).predict(image)
    got = predictor.predict(image)
    np.testing.assert_allclose(got["saliency"], want["saliency"], rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="given twice"):
        aesthal.make_predictor(path, scales="1,1")


def test_predict_command_line_takes_scales(trained_model, tmp_path, capsys):
    import csv

    import cv2

    from aesthal import predict

    path = tmp_path / "m.keras"
    trained_model.save(path)
    image = _images()[3]
    (tmp_path / "in").mkdir()
    assert cv2.imwrite(str(tmp_path / "in" / "x.png"), image[..., ::-1])
    args = [f"--model={path}", f"--input={tmp_path / 'in'}", "--no_progress"]
    status = predict.main([*args, "--scales=1,1.5", f"--output={tmp_path / 'out'}"])
    assert status == 0, capsys.readouterr().err
    with open(tmp_path / "out" / "predictions.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    want = aesthal.Ensemble([trained_model], scales=(1, 1.5)).predict(image)
    alone = Predictor(trained_model).predict(image)
    # Scale 1.5 changes the outputs by more than the CSV's and PNG's precision.
    assert abs(want["aesthetics_mean"] - alone["aesthetics_mean"]) > 5e-3
    assert (
        np.abs(want["saliency"] - alone["saliency"]).max()
        > 0.05 * alone["saliency"].max()
    )
    # The CSV has 4 decimals.
    np.testing.assert_allclose(
        float(row["mean_score"]), want["aesthetics_mean"], atol=6e-5
    )
    written = cv2.imread(str(tmp_path / "out" / "x_saliency.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(
        written / 65535.0, want["saliency"] / want["saliency"].max(), atol=1e-4
    )
    # A bad --scales is a usage error (exit status 2), before any work.
    for bad, message in [
        ("0", "--scales: scale 0 is not a finite number > 0: give factors"),
        ("a", "--scales: scale 'a' is not a number: give factors"),
        ("1,1", "--scales: scale 1 is given twice: give each scale once"),
        ("1,100", "--scales: scale 100 is outside 0.25..4: give factors of the"),
    ]:
        with pytest.raises(SystemExit) as info:
            predict.main([*args, f"--scales={bad}", f"--output={tmp_path / 'bad'}"])
        assert info.value.code == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "bad").exists()


def test_every_command_line_bounds_scales_alike(tmp_path):
    """Issue 24, item 9: run.py and figures.py take --scales through the same
    parser as aesthal.predict (checked before any model is loaded)."""
    import sys

    from conftest import fork_run

    for script, args in [
        ("run.py", ["--mode=evaluate", f"--output_dir={tmp_path / 'o'}"]),
        ("figures.py", [f"--output={tmp_path / 'f.png'}"]),
    ]:
        result = fork_run(
            [
                sys.executable,
                str(REPO / "experiments" / script),
                f"--model={tmp_path}",
                "--scales=1,100",
                *args,
            ],
            timeout=300,
        )
        assert result.returncode != 0, script
        assert "--scales: scale 100 is outside 0.25..4" in result.stderr, (
            script,
            result.stderr[-2000:],
        )
