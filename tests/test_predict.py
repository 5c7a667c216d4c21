"""`python -m aesthal.predict` on a folder of good and broken files."""

from __future__ import annotations

import csv
import json
import pathlib
import struct
import sys

import cv2
import keras
import numpy as np
import pytest
from conftest import fork_run

import aesthal
from aesthal import predict
from aesthal.inference import Predictor


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, pathlib.Path]:
    """A small untrained model as a `.keras` file and as a SavedModel."""
    folder = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    model = aesthal.build_model(aesthal.ModelConfig(input_size=(32, 48)))
    model.save(folder / "model.keras")
    aesthal.export_saved_model(model, folder / "saved_model")
    return {"keras": folder / "model.keras", "saved_model": folder / "saved_model"}


def _write(path: pathlib.Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image), path


# file -> (height, width) of the good images
GOOD = {
    "a.jpg": (40, 60),
    "gray.png": (33, 21),
    "rgba.png": (50, 50),
    "deep16.png": (24, 70),
    "b.bmp": (40, 60),
    "c.webp": (64, 48),
    "sub/d.JPG": (90, 30),
    "sub/a.png": (12, 12),
    "a.png": (40, 60),  # same stem as a.jpg
}
BROKEN = ["truncated.jpg", "empty.png", "notes.jpg"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for name, (h, w) in GOOD.items():
        if name == "gray.png":
            image = rng.integers(0, 256, (h, w), dtype=np.uint8)
        elif name == "rgba.png":
            image = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        elif name == "deep16.png":
            image = rng.integers(0, 65536, (h, w, 3), dtype=np.uint16)
        else:
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        _write(folder / name, image)
    jpeg = (folder / "a.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image, just text\n")
    (folder / "readme.txt").write_text("ignored: not an image extension\n")
    return folder


def test_read_image_conversions(photos):
    assert predict.read_image(photos / "gray.png").shape == (33, 21, 3)
    assert predict.read_image(photos / "rgba.png").shape == (50, 50, 3)
    stored = cv2.imread(str(photos / "deep16.png"), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint16
    np.testing.assert_array_equal(
        predict.read_image(photos / "deep16.png"),
        np.round(stored[..., ::-1] / 257.0).astype(np.uint8),
    )
    for name, match in [
        ("truncated.jpg", "truncated or corrupt"),
        ("empty.png", "empty file"),
        ("notes.jpg", "truncated or corrupt"),
    ]:
        with pytest.raises(ValueError, match=match):
            predict.read_image(photos / name)


def test_read_image_applies_exif_orientation(tmp_path):
    # A 20x40 JPEG, bright in its left 10 columns, tagged EXIF orientation 6
    # ("rotate 90 degrees clockwise to display"): shown 40x20, bright on top.
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :10] = 255
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0)
    exif = b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 4
    app1 = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    path = tmp_path / "rotated.jpg"
    path.write_bytes(jpeg[:2] + app1 + jpeg[2:])
    shown = predict.read_image(path)
    assert shown.shape == (40, 20, 3)
    np.testing.assert_allclose(shown[:10].mean(), 255, atol=3)
    np.testing.assert_allclose(shown[10:].mean(), 0, atol=3)


def _exif_rotated_jpeg(path: pathlib.Path) -> None:
    """A 20x40 JPEG, bright in its left 10 columns, tagged EXIF orientation 6."""
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :10] = 255
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0)
    exif = b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 4
    app1 = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    path.write_bytes(jpeg[:2] + app1 + jpeg[2:])


def _csv_rows(path: pathlib.Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as handle:
        return {row["file"]: row for row in csv.DictReader(handle)}


def _box(row: dict[str, str], tag: str) -> tuple[int, ...]:
    return tuple(int(row[f"crop_{tag}_{f}"]) for f in predict.BOX_FIELDS)


def test_crops_beside_the_maps_and_boxes_in_the_csv(models, photos, tmp_path, capsys):
    out = tmp_path / "predictions"
    status = predict.main(
        [
            f"--model={models['keras']}",
            f"--input={photos}",
            f"--output={out}",
            "--crops=1:1, 16:9,9:16",
            "--no_progress",
        ]
    )
    assert status == 0
    # Broken inputs are still counted and skipped.
    assert "12 image file(s): wrote 9 prediction(s)" in capsys.readouterr().out
    header = (out / "predictions.csv").read_text().splitlines()[0].split(",")
    assert header[-12:] == predict.crop_columns(["1:1", "16:9", "9:16"])
    assert header[-4:] == [f"crop_9x16_{f}" for f in ("top", "left", "height", "width")]
    rows = _csv_rows(out / "predictions.csv")
    assert len(rows) == 9
    names = predict.output_names([photos / f for f in GOOD], photos)
    for (file, (height, width)), name in zip(GOOD.items(), names, strict=True):
        row = rows[file]
        prefix = out / name
        saliency = cv2.imread(f"{prefix}_saliency.png", cv2.IMREAD_UNCHANGED)
        table = aesthal.crop.summed_area_table(saliency.astype(np.float64))
        for ratio in ("1:1", "16:9", "9:16"):
            tag = predict.crop_tag(ratio)
            top, left, win_h, win_w = _box(row, tag)
            assert (win_h, win_w) == aesthal.crop.window_size((height, width), ratio)
            # The heaviest window of the (16-bit) map written beside it.
            masses = aesthal.crop.window_masses(table, win_h, win_w)
            assert masses[top, left] >= masses.max() - 1e-3 * table[-1, -1]
            written = cv2.imread(
                f"{prefix}_crop_{tag}{pathlib.Path(file).suffix.lower()}",
                cv2.IMREAD_UNCHANGED,
            )
            assert written.shape[:2] == (win_h, win_w), (file, ratio)
            if file in ("a.png", "rgba.png"):  # lossless: exactly the pixels
                shown = predict.read_image(photos / file)
                np.testing.assert_array_equal(
                    written[..., ::-1], shown[top : top + win_h, left : left + win_w]
                )


def test_exif_rotated_input_is_cropped_as_shown(models, tmp_path):
    (tmp_path / "in").mkdir()
    _exif_rotated_jpeg(tmp_path / "in" / "rotated.jpg")
    out = tmp_path / "out"
    summary = predict.predict_folder(
        models["keras"], tmp_path / "in", out, crops=["16:9", "1:1"], progress=False
    )
    assert summary.written == 1
    row = _csv_rows(out / "predictions.csv")["rotated.jpg"]
    # Shown 40 high, 20 wide: 16:9 is 20 wide and round(11.25) = 11 high (the
    # stored 20x40 would give 40 x 23).
    assert (row["height"], row["width"]) == ("40", "20")
    top, left, height, width = _box(row, "16x9")
    assert (height, width, left) == (11, 20, 0) and 0 <= top <= 29
    assert _box(row, "1x1")[2:] == (20, 20)
    shown = predict.read_image(tmp_path / "in" / "rotated.jpg")
    for tag in ("16x9", "1x1"):
        top, left, height, width = _box(row, tag)
        written = cv2.imread(str(out / f"rotated_crop_{tag}.jpg"))[..., ::-1]
        assert written.shape == (height, width, 3)
        expected = shown[top : top + height, left : left + width]
        diff = np.abs(written.astype(int) - expected).mean()
        assert diff < 3, (tag, diff)


def test_bad_crop_ratio_is_a_usage_error(models, photos, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        predict.main(
            [
                f"--model={models['keras']}",
                f"--input={photos}",
                f"--output={tmp_path}",
                "--crops=1:1,16/9",
            ]
        )
    assert info.value.code == 2
    assert "--crops: aspect ratio '16/9'" in capsys.readouterr().err
    assert not (tmp_path / "predictions.csv").exists()


def test_output_names_keep_extensions_only_on_collisions(tmp_path):
    files = [tmp_path / n for n in ("a.jpg", "a.png", "b.png", "s/a.jpg")]
    names = predict.output_names(files, tmp_path)
    assert [str(n) for n in names] == ["a_jpg", "a_png", "b", "s/a"]


def test_folder_of_good_and_broken_files(models, photos, tmp_path, capsys):
    out = tmp_path / "predictions"
    status = predict.main(
        [
            f"--model={models['keras']}",
            f"--input={photos}",
            f"--output={out}",
            "--batch_size=4",
            "--no_progress",
        ]
    )
    assert status == 0
    printed = capsys.readouterr()
    assert "12 image file(s): wrote 9 prediction(s)" in printed.out
    assert "skipped 3 unreadable" in printed.out
    for name in BROKEN:
        assert f"skipped {name}:" in printed.err

    summary = json.loads((out / "summary.json").read_text())
    assert (summary["found"], summary["written"], summary["skipped"]) == (12, 9, 3)
    assert sorted(summary["skipped_files"]) == sorted(BROKEN)

    with open(out / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["file"] for r in rows) == sorted(GOOD)
    predictor = Predictor(models["keras"])
    for row in rows:
        h, w = GOOD[row["file"]]
        assert (int(row["height"]), int(row["width"])) == (h, w)
        probs = np.array([float(row[f"p{s}"]) for s in range(1, 11)])
        np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-5)
        np.testing.assert_allclose(
            float(row["mean_score"]), probs @ np.arange(1, 11), atol=1e-3
        )
    paths = [photos / name for name in GOOD]
    names = dict(zip(GOOD, predict.output_names(paths, photos), strict=True))
    assert names["a.jpg"] == pathlib.Path("a_jpg")
    for file, (h, w) in GOOD.items():
        saliency = cv2.imread(str(out / f"{names[file]}_saliency.png"), -1)
        overlay = cv2.imread(str(out / f"{names[file]}_overlay.jpg"))
        assert saliency.dtype == np.uint16 and saliency.shape == (h, w), file
        assert saliency.max() == 65535
        assert overlay.shape == (h, w, 3), file
        # The 16-bit map is the predicted density scaled to its maximum.
        expected = predictor.predict(predict.read_image(photos / file))["saliency"]
        np.testing.assert_allclose(
            saliency / 65535.0, expected / expected.max(), atol=2e-4
        )


def test_saved_model_and_keras_file_agree(models, photos):
    files = [photos / name for name in GOOD]
    images = [predict.read_image(f) for f in files]
    from_keras = list(Predictor(models["keras"]).predict_many(images, batch_size=4))
    from_saved = list(
        Predictor(models["saved_model"]).predict_many(images, batch_size=4)
    )
    for file, a, b in zip(files, from_keras, from_saved, strict=True):
        assert a["saliency"].shape == b["saliency"].shape
        np.testing.assert_allclose(
            a["saliency"], b["saliency"], rtol=1e-4, atol=1e-8, err_msg=str(file)
        )
        np.testing.assert_allclose(a["aesthetics"], b["aesthetics"], rtol=1e-4)
        np.testing.assert_allclose(a["aesthetics_mean"], b["aesthetics_mean"], 1e-5)


def test_single_file_and_errors(models, photos, tmp_path, capsys):
    out = tmp_path / "one"
    assert (
        predict.main(
            [
                f"--model={models['saved_model']}",
                f"--input={photos / 'c.webp'}",
                f"--output={out}",
                "--no_progress",
            ]
        )
        == 0
    )
    assert cv2.imread(str(out / "c_saliency.png"), -1).shape == (64, 48)
    assert (
        predict.main(
            [
                f"--model={models['keras']}",
                f"--input={photos / 'notes.jpg'}",
                f"--output={out}",
                "--no_progress",
            ]
        )
        == 1
    )  # nothing written
    assert (
        predict.main(
            [
                f"--model={models['keras']}",
                f"--input={tmp_path / 'nope'}",
                f"--output={out}",
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err


def test_output_folder_inside_the_input_is_not_read_back(models, photos, tmp_path):
    folder = tmp_path / "in"
    _write(folder / "x.png", np.zeros((8, 8, 3), np.uint8))
    for _ in range(2):  # the second run must not predict the first run's PNGs
        summary = predict.predict_folder(
            models["keras"], folder, folder / "out", progress=False
        )
        assert (summary.found, summary.written) == (1, 1)


@pytest.mark.slow
def test_command_line_entry_point(models, photos, tmp_path):
    # `python -m aesthal.predict ...`, forked from conftest's fork server.
    result = fork_run(
        [
            sys.executable,
            "-m",
            "aesthal.predict",
            f"--model={models['keras']}",
            f"--input={photos / 'sub'}",
            f"--output={tmp_path}",
        ],
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 image file(s): wrote 2 prediction(s)" in result.stdout
    assert cv2.imread(str(tmp_path / "d_saliency.png"), -1).shape == (90, 30)


@pytest.fixture(scope="module")
def tiny_scenes(tmp_path_factory) -> pathlib.Path:
    """synthetic_scenes/tiny, built once for the figure tests: its data_dir."""
    import tensorflow_datasets as tfds

    import aesthal.datasets  # noqa: F401  (registers the builders)

    data_dir = tmp_path_factory.mktemp("tfds")
    tfds.builder("synthetic_scenes/tiny", data_dir=str(data_dir)).download_and_prepare()
    return data_dir


def _render_figure(model, tmp_path, num_examples, data_dir):
    """experiments/figures.py on synthetic_scenes/tiny's test split (in
    `data_dir`), forked from conftest's fork server."""
    output = tmp_path / "figure.png"
    script = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "figures.py"
    result = fork_run(
        [
            sys.executable,
            str(script),
            f"--model={model}",
            "--dataset=synthetic_scenes/tiny",
            "--split=test",
            f"--num_examples={num_examples}",
            "--cell_height=64",
            f"--data_dir={data_dir}",
            f"--output={output}",
        ],
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result, output


@pytest.mark.slow
def test_figure_script_renders_the_grid(models, tmp_path, tiny_scenes):
    result, output = _render_figure(models["keras"], tmp_path, 3, tiny_scenes)
    grid = cv2.imread(str(output))[..., ::-1]
    # The size the script reports: 4 columns of 64 px high cells (48x32
    # images: 96 px wide) at 100 dpi, 3 rows of (64 px + 30 px caption), 30 px
    # of titles.
    assert f"3 examples, {4 * 96}x{3 * (64 + 30) + 30} px" in result.stdout
    assert grid.shape == (3 * (64 + 30) + 30, 4 * 96, 3)
    # The truth and prediction columns are JET heat maps (saturated colours,
    # from dark blue (0, 0, 128) up): each holds pixels far from grey.
    spread = grid.max(axis=-1).astype(int) - grid.min(axis=-1).astype(int)
    for column in (1, 2):
        cells = spread[30:, column * 96 : (column + 1) * 96]
        assert (cells > 100).mean() > 0.3, column


# ---------------------------------------------------------------- issue 15
def _main(*args) -> int:
    return predict.main([*map(str, args), "--no_progress"])


@pytest.fixture(scope="module")
def saliency_only(tmp_path_factory) -> dict[str, pathlib.Path]:
    """A model trained on saliency only, as `.keras` and SavedModel."""
    folder = tmp_path_factory.mktemp("saliency_only")
    keras.utils.set_random_seed(0)
    model = aesthal.build_model(
        aesthal.ModelConfig(input_size=(32, 48), tasks=("saliency",))
    )
    model.save(folder / "model.keras")
    aesthal.export_saved_model(model, folder / "saved_model")
    return {"keras": folder / "model.keras", "saved_model": folder / "saved_model"}


@pytest.mark.slow
def test_figure_script_takes_a_saliency_only_model(
    saliency_only, tmp_path, tiny_scenes
):
    # The grid's caption had read outputs["aesthetics_mean"] (a KeyError for a
    # model trained on saliency only); it now leaves the score out.
    result, output = _render_figure(
        saliency_only["saved_model"], tmp_path, 2, tiny_scenes
    )
    assert "2 examples" in result.stdout
    assert cv2.imread(str(output)).shape[0] == 2 * (64 + 30) + 30


@pytest.mark.parametrize("form", ["keras", "saved_model"])
def test_untrained_aesthetics_head_is_not_reported(
    saliency_only, photos, tmp_path, capsys, form
):
    # Issue 15, item 2: no made-up one-hot distribution / mean_score 5.0.
    import tensorflow as tf

    with pytest.warns(UserWarning, match="aesthetics outputs are left out"):
        predictor = Predictor(saliency_only[form])
    assert predictor.tasks == ("saliency",)
    outputs = predictor.predict(np.zeros((20, 30, 3), np.uint8))
    assert set(outputs) == {"saliency"}
    assert outputs["saliency"].shape == (20, 30)
    if form == "saved_model":
        loaded = tf.saved_model.load(str(saliency_only[form]))
        for name in ("serving_default", "predict_at_model_size"):
            assert set(loaded.signatures[name].structured_outputs) == {"saliency"}

    out = tmp_path / "out"
    assert (
        _main(f"--model={saliency_only[form]}", f"--input={photos}", f"--output={out}")
        == 0
    )
    err = capsys.readouterr().err
    assert err.count("left out") == 1, err
    assert "trained on saliency only" in err
    with open(out / "predictions.csv") as handle:
        assert next(csv.reader(handle)) == ["file", "height", "width"]
    assert json.loads((out / "summary.json").read_text())["tasks"] == ["saliency"]
    assert (out / "a_jpg_saliency.png").exists()


def test_models_saved_before_the_tasks_field_count_as_both(tmp_path):
    config = aesthal.ModelConfig(input_size=(32, 48)).to_dict()
    del config["tasks"]  # a .keras file written before ModelConfig.tasks
    model = aesthal.AesthalModel(config)
    assert model.config.tasks == ("saliency", "aesthetics")
    assert set(Predictor(model).predict(np.zeros((8, 8, 3), np.uint8))) == {
        "saliency",
        "aesthetics",
        "aesthetics_mean",
    }


def test_output_equal_to_input_or_a_file_is_a_usage_error(
    models, photos, tmp_path, capsys
):
    # Issue 15, item 6: was "no image files" / a FileExistsError traceback.
    assert (
        _main(f"--model={models['keras']}", f"--input={photos}", f"--output={photos}")
        == 2
    )
    err = capsys.readouterr().err
    assert f"--output {photos} is the --input folder" in err
    assert "no image files" not in err
    existing = tmp_path / "taken.csv"
    existing.write_text("x\n")
    assert (
        _main(f"--model={models['keras']}", f"--input={photos}", f"--output={existing}")
        == 2
    )
    assert f"--output {existing} is an existing file" in capsys.readouterr().err


def _unwritable_folder(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").write_bytes(b"")
    except OSError:
        return folder / "out"
    (folder / "probe").unlink()  # root ignores modes: a read-only mount instead
    for candidate in (pathlib.Path("/sys/kernel/debug"), pathlib.Path("/proc/1")):
        try:
            (candidate / "probe").write_bytes(b"")
        except OSError:
            return candidate / "out"
    pytest.skip("no unwritable folder on this machine")


def test_unwritable_output_is_one_line_and_exit_2_before_any_work(
    models, photos, tmp_path, capsys
):
    # Issue 15, item 7: was a traceback and exit 1.
    out = _unwritable_folder(tmp_path)
    assert (
        _main("--model=/no/such/model.keras", f"--input={photos}", f"--output={out}")
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --output {out}: cannot write there (")
    assert len(err.splitlines()) == 1, err  # before the model is even looked at


def test_truncated_keras_file_and_looping_symlink(models, photos, tmp_path, capsys):
    # Issue 15, item 8: a truncated .keras was "File not found"; a symlink
    # pointing at itself vanished from the counts.
    data = pathlib.Path(models["keras"]).read_bytes()
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(data[: len(data) // 2])
    assert (
        _main(f"--model={truncated}", f"--input={photos}", f"--output={tmp_path / 'o'}")
        == 2
    )
    err = capsys.readouterr().err
    assert f"{truncated}: not a readable .keras file" in err and "truncated" in err
    assert "not found" not in err.lower()

    folder = tmp_path / "in"
    _write(folder / "good.png", np.zeros((10, 10, 3), np.uint8))
    (folder / "loop.jpg").symlink_to("loop.jpg")
    out = tmp_path / "o2"
    assert (
        _main(f"--model={models['keras']}", f"--input={folder}", f"--output={out}") == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["found"], summary["written"], summary["skipped"]) == (2, 1, 1)
    assert "symbolic links" in summary["skipped_files"]["loop.jpg"]


# ---------------------------------------------------------------- issue 24
def test_folders_take_every_format_the_reader_takes(models, tmp_path, capsys):
    # Item 11: .gif and .tif files in a folder were silently left out.
    from aesthal import image_io

    folder = tmp_path / "in"
    rng = np.random.default_rng(3)
    names = [f"x{i}{ext}" for i, ext in enumerate(image_io.IMAGE_EXTENSIONS)]
    names += ["upper.GIF", "upper.TIF"]
    for name in names:
        _write(folder / name, rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    assert {pathlib.Path(n).suffix.lower() for n in names} == set(
        image_io.IMAGE_EXTENSIONS
    )
    out = tmp_path / "out"
    assert (
        _main(f"--model={models['keras']}", f"--input={folder}", f"--output={out}") == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["found"], summary["written"]) == (len(names), len(names))
    assert set(_csv_rows(out / "predictions.csv")) == set(names)
    # Each is read as when named alone.
    for name in ("x0.jpg", "upper.GIF"):
        assert predict.list_images(folder / name) == [folder / name]


def _guard_decoder(monkeypatch, forbidden: pathlib.Path) -> None:
    """Makes decoding the bytes of `forbidden` fail the test (instead of
    taking gigabytes)."""
    real = cv2.imdecode
    size = forbidden.stat().st_size

    def guarded(data, flags):
        assert len(data) != size, f"{forbidden} was decoded"
        return real(data, flags)

    monkeypatch.setattr(cv2, "imdecode", guarded)


def test_pixel_bomb_in_a_folder_is_a_counted_skip(
    models, tmp_path, capsys, monkeypatch
):
    # Item 7: a 12000x12000 PNG of < 1 MB cost 5.1 GB in predict.
    from test_image_io import png_of_zeros

    folder = tmp_path / "in"
    _write(folder / "good.png", np.zeros((20, 30, 3), np.uint8))
    bomb = png_of_zeros(folder / "bomb.png", 12000, 12000)
    _guard_decoder(monkeypatch, bomb)
    out = tmp_path / "out"
    assert (
        _main(f"--model={models['keras']}", f"--input={folder}", f"--output={out}") == 0
    )
    printed = capsys.readouterr()
    assert (
        "2 image file(s): wrote 1 prediction(s)" in printed.out
        and "skipped 1 unreadable, 1 of them over --max_pixels" in printed.out
    )
    assert f"skipped bomb.png: {bomb}: 12000x12000 pixels" in printed.err
    assert "--max_pixels=144000000" in printed.err
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["written"], summary["skipped"], summary["too_large"]) == (1, 1, 1)
    assert "over the limit of 50 megapixels" in summary["skipped_files"]["bomb.png"]
    # Named alone, it is a usage error, found before the model is looked at.
    status = _main(
        "--model=/no/such/model.keras", f"--input={bomb}", f"--output={tmp_path / 'o'}"
    )
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"error: {bomb}: 12000x12000 pixels (144.0 megapixels)")
    assert len(err.strip().splitlines()) == 1, err


def test_max_pixels_flag(models, tmp_path, capsys):
    folder = tmp_path / "in"
    _write(folder / "a.png", np.zeros((100, 100, 3), np.uint8))  # 10000 px
    _write(folder / "b.png", np.zeros((50, 50, 3), np.uint8))  # 2500 px
    args = (f"--model={models['keras']}", f"--input={folder}")
    assert _main(*args, f"--output={tmp_path / 'o1'}", "--max_pixels=9999") == 0
    summary = json.loads((tmp_path / "o1" / "summary.json").read_text())
    assert (summary["written"], summary["too_large"]) == (1, 1)
    assert list(summary["skipped_files"]) == ["a.png"]
    assert _main(*args, f"--output={tmp_path / 'o2'}", "--max_pixels=10000") == 0
    summary = json.loads((tmp_path / "o2" / "summary.json").read_text())
    assert (summary["written"], summary["too_large"]) == (2, 0)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        _main(*args, f"--output={tmp_path / 'o3'}", "--max_pixels=0")
    assert info.value.code == 2
    assert "--max_pixels must be >= 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name",
    [
        "x_saliency.png",
        "x_overlay.jpg",
        "x_crop_1x1.png",
        "predictions.csv",
        "summary.json",
    ],
)
def test_a_full_disk_names_the_file_that_could_not_be_written(
    models, tmp_path, capsys, name
):
    # Item 12: the error named no path. /dev/full fails every write with ENOSPC.
    if not pathlib.Path("/dev/full").exists():
        pytest.skip("no /dev/full on this machine")
    folder = tmp_path / "in"
    _write(folder / "x.png", np.zeros((20, 30, 3), np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to("/dev/full")
    status = _main(
        f"--model={models['keras']}",
        f"--input={folder}",
        f"--output={out}",
        "--crops=1:1",
    )
    err = capsys.readouterr().err
    assert status == 2
    assert err.strip() == (
        f"error: cannot write {out / name} (No space left on device): free some "
        "space or give another --output"
    )


def test_run_py_predict_mode_passes_max_pixels(models, tmp_path):
    folder = tmp_path / "in"
    _write(folder / "a.png", np.zeros((100, 100, 3), np.uint8))
    run = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "run.py"
    result = fork_run(
        [
            sys.executable,
            str(run),
            "--mode=predict",
            f"--model={models['keras']}",
            f"--input={folder / 'a.png'}",
            f"--output_dir={tmp_path / 'out'}",
            "--max_pixels=9999",
        ],
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "a.png: 100x100 pixels (0.0 megapixels) is over the limit" in result.stderr


def test_outputs_written_in_a_pool_keep_the_input_order(models, tmp_path):
    # predict_folder encodes and writes each photo's outputs in a thread pool
    # while the model maps the next batch; the CSV must still list the photos
    # in input order, each row with its own photo's size and map.
    folder = tmp_path / "in"
    rng = np.random.default_rng(0)
    sizes = [(12 + 3 * i, 40 - i) for i in range(13)]
    for i, size in enumerate(sizes):
        _write(folder / f"p{i:02d}.png", rng.integers(0, 256, (*size, 3), np.uint8))
    out = tmp_path / "out"
    model = keras.saving.load_model(models["keras"], safe_mode=True)
    summary = predict.predict_folder(
        model, folder, out, batch_size=2, progress=False, crops=["1:1"]
    )
    assert summary.written == 13
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    assert [row[0] for row in rows] == [f"p{i:02d}.png" for i in range(13)]
    assert [(int(r[1]), int(r[2])) for r in rows] == sizes
    predictor = Predictor(model)
    for i, size in enumerate(sizes):
        written = cv2.imread(str(out / f"p{i:02d}_saliency.png"), cv2.IMREAD_UNCHANGED)
        assert written.shape == size
        image = predict.read_image(folder / f"p{i:02d}.png")
        expected = predictor.predict(image)["saliency"]
        np.testing.assert_allclose(
            written / 65535.0, expected / expected.max(), atol=2e-4
        )
