"""experiments/run.py end to end on the tiny flagfile, and its flag checks."""

import json
import pathlib
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import background_fixture, fork_run

REPO = pathlib.Path(__file__).resolve().parents[2]
RUN = REPO / "experiments" / "run.py"
TINY = REPO / "experiments" / "configs" / "tiny.flags"


def _run(*args, cwd=REPO):
    """`python experiments/run.py ARGS` in `cwd`, as a `CompletedProcess`: in a
    child of conftest's fork server (one TensorFlow import for every command:
    the same exit status, output and files as a subprocess)."""
    return fork_run([sys.executable, RUN, *args], cwd=cwd, timeout=600)


@background_fixture
def tiny_run(tmp_path):
    """run.py on the tiny flagfile, in the background from the session's start
    (conftest.background_fixture): `(out, data_dir, result)`."""
    root = tmp_path
    out, data_dir = root / "out", root / "tfds"
    result = _run(f"--flagfile={TINY}", f"--output_dir={out}", f"--data_dir={data_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, data_dir, result


@background_fixture
def tiny_mirrored_run(tmp_path):
    """The tiny run again under `--distribution=mirrored` (one replica here)."""
    out = tmp_path / "out"
    result = _run(
        f"--flagfile={TINY}",
        "--distribution=mirrored",
        f"--output_dir={out}",
        f"--data_dir={tmp_path / 'tfds'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.slow
def test_mirrored_distribution_trains_like_the_default(tiny_run, tiny_mirrored_run):
    """`--distribution=mirrored` through run.py: train, export and evaluate
    under MirroredStrategy; with one replica every logged value equals the
    default strategy's run (the multi-replica maths is in test_distributed)."""
    out, _, _ = tiny_run
    mirrored = tiny_mirrored_run
    history = json.loads((out / "history.json").read_text())
    again = json.loads((mirrored / "history.json").read_text())
    assert set(again) == set(history)
    for key, values in history.items():
        np.testing.assert_allclose(again[key], values, rtol=1e-5, err_msg=key)
    assert (mirrored / "saved_model" / "saved_model.pb").exists()
    times = json.loads((mirrored / "train_time.json").read_text())
    assert (times["strategy"], times["replicas"]) == ("MirroredStrategy", 1)
    default = json.loads((out / "train_time.json").read_text())
    assert default["strategy"] == "DefaultDistributionStrategy"
    first = json.loads((out / "metrics.json").read_text())["saliency"]["metrics"]
    other = json.loads((mirrored / "metrics.json").read_text())["saliency"]["metrics"]
    assert other["model"]["nss"]["mean"] == pytest.approx(
        first["model"]["nss"]["mean"], rel=1e-4
    )


@pytest.mark.slow
def test_train_writes_every_artefact(tiny_run):
    out, _, result = tiny_run
    for name in (
        "config.json",
        "flags.txt",
        "model.keras",
        "checkpoints/last.keras",
        "history.json",
        "saved_model/saved_model.pb",
        "metrics.json",
        "metrics.md",
    ):
        assert (out / name).exists(), name
    assert list((out / "tensorboard").rglob("events.out.tfevents*"))
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["input_size"] == [32, 48]
    assert config["model"]["side_heads"] == [["saliency", "stage2", 0.3]]
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 2 and "val_saliency_loss" in history
    # The printed table is the one written to metrics.md.
    assert (out / "metrics.md").read_text().strip() in result.stdout


@pytest.mark.slow
def test_metrics_cover_the_test_split_with_baselines(tiny_run):
    out, _, _ = tiny_run
    metrics = json.loads((out / "metrics.json").read_text())
    saliency = metrics["saliency"]
    assert metrics["split"] == "test" and saliency["num_evaluated"] == 8
    assert set(saliency["metrics"]) == {
        "model",
        "uniform",
        "centre_bias",
        "true_density",
    }
    # The ceiling is the truth itself: its IG share is 1 by definition, and the
    # uniform map's NSS is 0 (a constant map carries no information).
    assert saliency["explainable_information_gain_share"]["true_density"] == 1.0
    assert saliency["metrics"]["uniform"]["nss"]["mean"] == 0.0
    assert metrics["aesthetics"]["num_images"] == 8


@pytest.mark.slow
def test_exported_model_matches_the_keras_model(tiny_run):
    out, _, _ = tiny_run
    import aesthal

    model = aesthal.load_model(out / "model.keras")
    served = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    image = np.random.default_rng(0).integers(0, 256, (1, 32, 48, 3), dtype=np.uint8)
    expected = model.predict(image.astype(np.float32), verbose=0)
    got = served(images=tf.constant(image))
    np.testing.assert_allclose(got["aesthetics"], expected["aesthetics"], atol=1e-5)
    # At the model's own size the serving resizes are identities.
    assert got["saliency"].shape == (1, 32, 48, 1)
    np.testing.assert_allclose(
        got["saliency"], expected["saliency"], rtol=1e-4, atol=1e-9
    )


@pytest.mark.slow
def test_evaluate_and_export_modes(tiny_run, tmp_path):
    out, data_dir, _ = tiny_run
    evaluated = _run(
        "--mode=evaluate",
        f"--model={out / 'saved_model'}",
        "--dataset=synthetic_scenes/tiny",
        f"--data_dir={data_dir}",
        f"--output_dir={tmp_path / 'eval'}",
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    first = json.loads((out / "metrics.json").read_text())["saliency"]["metrics"]
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())["saliency"]
    # The SavedModel and the in-memory model give the same scores.
    for name in ("cc", "kld", "nss", "auc_judd"):
        assert again["metrics"]["model"][name]["mean"] == pytest.approx(
            first["model"][name]["mean"], abs=1e-4
        )
    exported = _run(
        "--mode=export",
        f"--model={out / 'model.keras'}",
        f"--output_dir={tmp_path / 'x'}",
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (tmp_path / "x" / "saved_model" / "saved_model.pb").exists()


@pytest.mark.slow
def test_evaluate_mode_with_crops_writes_the_crop_table(tmp_path):
    import aesthal
    from aesthal.datasets.osie import osie_dataset_builder

    model_path = tmp_path / "model.keras"
    aesthal.build_model(aesthal.ModelConfig(input_size=(32, 48))).save(model_path)
    dummy = pathlib.Path(osie_dataset_builder.__file__).parent / "dummy_data"
    result = _run(
        "--mode=evaluate",
        # An ensemble with mirror images (aesthal.inference.Ensemble) takes
        # the same path as one model.
        f"--model={model_path},{model_path}",
        "--mirror",
        "--dataset=osie",
        f"--manual_dir={dummy}",
        f"--data_dir={tmp_path / 'tfds'}",
        "--train_split=train",
        "--tasks=saliency",
        "--crops=1:1,16:9",
        f"--output_dir={tmp_path / 'eval'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "eval" / "metrics.md").exists()
    crops = json.loads((tmp_path / "eval" / "crops.json").read_text())
    assert crops["files"] == ["1601.jpg"] and crops["ratios"] == ["1:1", "16:9"]
    # Hand-worked in tests/metrics/test_crop_report.py.
    assert crops["rows"]["centre crop"]["1:1"]["mean"] == pytest.approx(1 / 3)
    assert crops["rows"]["human ceiling"]["16:9"]["mean"] == 0.5
    assert "| human ceiling | 0.500 | 0.500 |" in result.stdout
    assert "(with mirror images)" in (tmp_path / "eval" / "metrics.md").read_text()


@pytest.mark.slow
def test_predict_mode_writes_maps_and_counts_broken_files(tiny_run, tmp_path):
    import cv2

    out, _, _ = tiny_run
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    cv2.imwrite(str(images / "a.jpg"), rng.integers(0, 256, (30, 50, 3), np.uint8))
    cv2.imwrite(str(images / "b.png"), rng.integers(0, 256, (64, 40), np.uint8))
    (images / "broken.jpg").write_bytes(b"not an image")
    result = _run(
        "--mode=predict",
        f"--model={out / 'saved_model'}",
        f"--input={images}",
        f"--output_dir={tmp_path / 'pred'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 image file(s): wrote 2 prediction(s)" in result.stdout
    assert "skipped 1 unreadable" in result.stdout
    saliency = cv2.imread(
        str(tmp_path / "pred" / "b_saliency.png"), cv2.IMREAD_UNCHANGED
    )
    assert saliency.dtype == np.uint16 and saliency.shape == (64, 40)


def _assert_same_numbers(mine, theirs, where="") -> None:
    """`mine == theirs` for JSON values, floats within rtol 1e-5."""
    if isinstance(theirs, dict):
        assert sorted(mine) == sorted(theirs), where
        for key in theirs:
            _assert_same_numbers(mine[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert len(mine) == len(theirs), where
        for index, (a, b) in enumerate(zip(mine, theirs, strict=True)):
            _assert_same_numbers(a, b, f"{where}[{index}]")
    elif isinstance(theirs, float):
        assert mine == pytest.approx(theirs, rel=1e-5, abs=1e-9, nan_ok=True), where
    else:
        assert mine == theirs, where


BAD_FLAGS = [
    (["--epochs=2"], "--output_dir is required"),
    (["--output_dir=OUT", "--mode=evaluate"], "--mode=evaluate needs --model"),
    (
        ["--output_dir=OUT", "--budget_mode=nested", "--saliency_labels=5"],
        "needs both --saliency_labels and --aesthetics_labels",
    ),
    (["--output_dir=OUT", "--side_heads=saliency:stage2"], "not task:tap:weight"),
    (["--output_dir=OUT", "--saliency_taps=stage9"], "unknown taps"),
    (
        ["--output_dir=OUT", "--loss_weighting=uncertainty", "--saliency_weight=2"],
        "contradict",
    ),
    (["--output_dir=OUT", "--permute_aesthetics", "--tasks=saliency"], "permute"),
    (["--output_dir=OUT", "--init_from=/no/such.keras"], "no such file"),
    (["--output_dir=OUT", "--init_heads"], "--init_heads needs --init_from"),
    (["--output_dir=OUT", "--no_such_flag=1"], "no_such_flag"),
    (["--output_dir=OUT", "--crops=1:1,16x9"], "--crops: aspect ratio '16x9'"),
    (
        ["--output_dir=OUT", "--mode=export", "--model=.", "--crops=1:1"],
        "--crops is for --mode=evaluate, train or predict",
    ),
    (
        ["--output_dir=OUT", "--mode=export", "--model=.,."],
        "--mode=export takes one --model",
    ),
    (["--output_dir=OUT", "--mirror"], "--mirror is for --mode=evaluate"),
    (["--output_dir=OUT", "--scales=1,1.5"], "--scales is for --mode=evaluate"),
    (
        ["--output_dir=OUT", "--mode=evaluate", "--model=.", "--scales=0"],
        "--scales: scale 0 is not a finite number > 0: give factors",
    ),
    (
        ["--output_dir=OUT", "--mode=evaluate", "--model=.", "--scales=a"],
        "--scales: scale 'a' is not a number",
    ),
    (
        [
            "--output_dir=OUT",
            "--mode=predict",
            "--model=.",
            "--input=.",
            "--scales=1,1",
        ],
        "--scales: scale 1 is given twice: give each scale once",
    ),
    (["--output_dir=OUT", "--mode=evaluate", "--model=.,/no/such"], "/no/such"),
    # aesthal.predict's own usage error (exit status 2).
    (["--output_dir=OUT", "--mode=predict", "--model=."], "--input"),
]


@background_fixture
def bad_flag_runs(tmp_path):
    """`{case index: (result, OUT)}` for every case of BAD_FLAGS, run one after
    another (`_run`), in the background from the session's start
    (conftest.background_fixture)."""
    runs = {}
    for index, (case_args, _) in enumerate(BAD_FLAGS):
        out = tmp_path / f"case{index}" / "out"
        runs[index] = (_run(*[a.replace("OUT", str(out)) for a in case_args]), out)
    return runs


@pytest.mark.parametrize(
    "index, args, message", [(i, *case) for i, case in enumerate(BAD_FLAGS)]
)
def test_bad_flags_fail_before_any_work(bad_flag_runs, index, args, message):
    result, out = bad_flag_runs[index]
    assert result.returncode == 2  # a usage error, in every mode
    assert message in result.stderr
    # The error alone, as absl prints its own flag errors (issue 15, item 8):
    # not after the module's whole help text.
    assert "Trains, evaluates, exports" not in result.stderr
    assert not (out / "config.json").exists()


@pytest.mark.slow
def test_rerun_of_a_finished_run_keeps_its_record(tiny_run):
    # Issue 15, item 1: the same command again used to leave history.json {}
    # and train_time.json ~0.2 s. Now: nothing to do, every file kept; with
    # the export and the evaluation gone (a kill during export), it redoes
    # only those.
    out, data_dir, _ = tiny_run
    command = (f"--flagfile={TINY}", f"--output_dir={out}", f"--data_dir={data_dir}")
    kept = ("history.json", "train_time.json", "metrics.json")
    record = {name: (out / name).read_text() for name in kept}
    result = _run(*command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "holds this run, finished: nothing to do" in result.stdout
    for name in kept:
        assert (out / name).read_text() == record[name], name

    import shutil

    shutil.rmtree(out / "saved_model")
    (out / "metrics.json").unlink()
    result = _run(*command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "saved_model" / "saved_model.pb").exists()
    # Evaluated again, by the model loaded from model.keras instead of the
    # one in memory after training: the same numbers, to float32 round-off.
    _assert_same_numbers(
        json.loads((out / "metrics.json").read_text()),
        json.loads(record["metrics.json"]),
    )
    for name in ("history.json", "train_time.json"):
        assert (out / name).read_text() == record[name], name


@pytest.mark.slow
def test_a_fresh_run_without_export_or_evaluation_is_not_called_finished(
    tiny_run, tmp_path
):
    # It printed "holds this run, finished: nothing to do" right after
    # training, and its rerun listed a saved_model/ and metrics.json that a
    # run without them does not have.
    _, data_dir, _ = tiny_run
    command = (
        f"--flagfile={TINY}",
        f"--output_dir={tmp_path / 'out'}",
        f"--data_dir={data_dir}",
        "--epochs=1",
        "--noexport",
        "--noevaluate",
    )
    result = _run(*command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "nothing to do" not in result.stdout
    assert (tmp_path / "out" / "model.keras").exists()
    result = _run(*command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "holds this run, finished: nothing to do (kept: history.json, "
        "train_time.json, model.keras)"
    ) in result.stdout


@pytest.mark.slow
def test_rerun_with_another_config_is_one_line_and_keeps_the_record(tiny_run):
    # A finished run's folder given to a different configuration: a one-line
    # error (was a ValueError traceback) and the old run's flags.txt kept
    # (it used to be overwritten before the refusal).
    out, data_dir, _ = tiny_run
    flags_before = (out / "flags.txt").read_text()
    result = _run(
        f"--flagfile={TINY}",
        f"--output_dir={out}",
        f"--data_dir={data_dir}",
        "--learning_rate=0.5",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "holds a training run with another configuration" in result.stderr
    assert "train.learning_rate" in result.stderr
    assert (out / "flags.txt").read_text() == flags_before


# Locks `argv[1]`'s run.lock as aesthal.training.output_lock does, says so,
# then waits for stdin to close (plain Python: no TensorFlow).
_LOCK_HOLDER = r"""
import fcntl, os, sys
handle = os.open(os.path.join(sys.argv[1], "run.lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(handle, fcntl.LOCK_EX)
os.ftruncate(handle, 0)
os.write(handle, f"{os.getpid()}\n".encode())
print("locked", flush=True)
sys.stdin.read()
"""


def _keep_half_the_arrays(path) -> None:
    """Rewrites an HDF5 weights file with the first half of its arrays only."""
    import h5py

    with h5py.File(path, "r") as source:
        names = []
        source.visititems(
            lambda name, item: (
                names.append(name) if isinstance(item, h5py.Dataset) else None
            )
        )
        arrays = {name: source[name][()] for name in names[: len(names) // 2]}
    with h5py.File(path, "w") as target:
        for name, value in arrays.items():
            target[name] = value


def _weights(path):
    import aesthal

    return aesthal.load_model(path).get_weights()


@background_fixture
def refused_and_recovered_runs(tmp_path):
    """Issue 24, items 6, 8 and 10 through run.py, in the background
    (conftest.background_fixture): `{name: CompletedProcess}` and the
    weights after each training."""
    import subprocess

    out, data_dir = tmp_path / "out", tmp_path / "tfds"
    command = (
        f"--flagfile={TINY}",
        f"--output_dir={out}",
        f"--data_dir={data_dir}",
        "--noexport",
        "--noevaluate",
    )
    runs, weights = {}, {}
    runs["straight"] = _run(*command)
    assert runs["straight"].returncode == 0, runs["straight"].stderr[-3000:]
    weights["straight"] = _weights(out / "model.keras")
    backup = out / "backup"
    # Ctrl-C during epoch 2's backup, as it was left when Keras wrote the
    # backups in place: a valid HDF5 file holding half the arrays (every
    # rerun then failed: "... objects could not be loaded"); no model.keras.
    _keep_half_the_arrays(backup / "latest.weights.h5")
    (out / "model.keras").unlink()
    runs["resumed"] = _run(*command)
    weights["resumed"] = _weights(out / "model.keras")
    runs["resumed_history"] = json.loads((out / "history.json").read_text())
    # Nothing readable left.
    for name in ("latest.weights.h5", "previous.weights.h5"):
        (backup / name).write_bytes(b"\0" * 4096)
    (out / "model.keras").unlink()
    runs["unreadable"] = _run(*command)
    runs["start_over"] = _run(*command, "--start_over")
    weights["start_over"] = _weights(out / "model.keras")
    runs["start_over_history"] = json.loads((out / "history.json").read_text())
    # Another process holds the folder.
    holder = subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        flags_before = (out / "flags.txt").read_text()
        runs["locked"] = _run(*command, "--start_over")
        runs["locked_flags_kept"] = (out / "flags.txt").read_text() == flags_before
        runs["holder_pid"] = holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    # Batches larger than the splits (train 24, validation 8).
    for batch in (100000, 16):
        other = tmp_path / f"batch{batch}"
        runs[f"batch{batch}"] = _run(
            f"--flagfile={TINY}",
            f"--output_dir={other}",
            f"--data_dir={data_dir}",
            f"--batch_size={batch}",
        )
        runs[f"batch{batch}_files"] = sorted(p.name for p in other.iterdir())
    return runs, weights


def _one_line_error(result) -> str:
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def _assert_close(a, b):
    for mine, theirs in zip(a, b, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_a_half_written_backup_resumes_from_the_previous_one(
    refused_and_recovered_runs,
):
    runs, weights = refused_and_recovered_runs
    assert runs["resumed"].returncode == 0, runs["resumed"].stderr[-3000:]
    # Epoch 2 redone from epoch 1's backup: the uninterrupted run's weights.
    _assert_close(weights["resumed"], weights["straight"])
    assert len(runs["resumed_history"]["loss"]) == 2


@pytest.mark.slow
def test_no_readable_backup_is_one_line_and_start_over_trains_again(
    refused_and_recovered_runs,
):
    runs, weights = refused_and_recovered_runs
    line = _one_line_error(runs["unreadable"])
    assert "no training backup in" in line and "latest.weights.h5:" in line
    assert "--start_over" in line
    assert runs["start_over"].returncode == 0, runs["start_over"].stderr[-3000:]
    _assert_close(weights["start_over"], weights["straight"])
    assert len(runs["start_over_history"]["loss"]) == 2


@pytest.mark.slow
def test_a_second_run_on_a_locked_folder_is_refused_in_one_line(
    refused_and_recovered_runs,
):
    runs, _ = refused_and_recovered_runs
    line = _one_line_error(runs["locked"])
    assert "is in use by another training run" in line
    assert f"process {runs['holder_pid']}," in line
    assert runs["locked_flags_kept"]  # refused before it wrote anything


@pytest.mark.slow
@pytest.mark.parametrize(
    "batch, split", [(100000, "training split"), (16, "validation split")]
)
def test_a_batch_larger_than_a_split_is_one_line_before_training(
    refused_and_recovered_runs, batch, split
):
    runs, _ = refused_and_recovered_runs
    line = _one_line_error(runs[f"batch{batch}"])
    assert f"batch_size {batch} is larger than the {split}" in line
    assert "history.json" not in runs[f"batch{batch}_files"]
    assert "config.json" not in runs[f"batch{batch}_files"]
