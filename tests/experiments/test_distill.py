"""experiments/distill.py: the views, the targets, the teacher's mirror
symmetry the design relies on, and both steps end to end on OSIE's dummy data."""

import json
import pathlib
import sys

import numpy as np
import pytest
from conftest import fork_run, load_script

import aesthal
from aesthal.datasets.osie import osie_dataset_builder
from aesthal.inference import Ensemble

REPO = pathlib.Path(__file__).resolve().parents[2]
distill = load_script(REPO / "experiments" / "distill.py", "distill")


def test_views_are_inside_the_image_and_drawn_from_the_seed_alone():
    views = distill.draw_views((600, 800), index=7, count=40, seed=3)
    assert views[0] == distill.View(0, 0, 600, 800)  # the whole image, unchanged
    assert views == distill.draw_views((600, 800), index=7, count=40, seed=3)
    assert views != distill.draw_views((600, 800), index=8, count=40, seed=3)
    aspects = []
    for view in views[1:]:
        assert 0 <= view.top and view.top + view.height <= 600
        assert 0 <= view.left and view.left + view.width <= 800
        aspects.append(view.width / view.height)
        assert 0.3 <= view.resolution <= 1.0
    # Crops of other aspect ratios than the image's 4:3, on both sides of it,
    # within the drawn range (rounding to whole pixels aside).
    assert min(aspects) < 1.0 and max(aspects) > 1.6
    assert min(aspects) > 0.5 * 0.97 and max(aspects) < 2.0 * 1.03
    assert any(v.resolution < 1.0 for v in views) and any(v.grey for v in views)


def test_view_pixels_crop_then_resample():
    image = np.arange(60 * 80 * 3, dtype=np.uint8).reshape(60, 80, 3)
    view = distill.View(top=10, left=20, height=30, width=40)
    np.testing.assert_array_equal(distill.view_pixels(image, view), image[10:40, 20:60])
    low = distill.View(top=0, left=0, height=60, width=80, resolution=0.5)
    assert distill.view_pixels(image, low).shape == (30, 40, 3)


def test_jitter_of_a_plain_view_is_the_identity_and_grey_is_grey():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    plain, grey = distill.View(0, 0, 8, 8), distill.View(0, 0, 8, 8, grey=True)
    out = distill.jitter_images(images, [plain, grey]).numpy()
    np.testing.assert_allclose(out[0], images[0], atol=1e-3)
    np.testing.assert_allclose(out[1][..., 0], out[1][..., 2], atol=1e-3)


def test_fixation_counts_at_the_student_size():
    # Two fixations in a 600x800 image, one counted twice: at 6x8 they fall
    # on pixels (0, 0) and (5, 7), the second twice.
    points = np.array([[0.0, 0.0], [599.0, 799.0], [598.0, 798.0]])
    counts = distill.fixation_counts(points, (600, 800), (6, 8))
    expected = np.zeros((6, 8))
    expected[0, 0], expected[5, 7] = 1 / 3, 2 / 3
    np.testing.assert_allclose(counts, expected)


def test_student_target_mixes_teacher_and_fixations_and_mirrors():
    teacher = np.ones((3, 4))
    teacher[:, 0] = 5.0  # left column heavier
    counts = np.zeros((3, 4), np.float32)
    counts[1, 3] = 1.0
    target = distill.student_target(teacher, counts, 0.25, False, (3, 4))
    expected = 0.75 * teacher / teacher.sum() + 0.25 * counts
    np.testing.assert_allclose(target, expected, rtol=1e-6)
    assert target.sum() == pytest.approx(1.0)
    mirrored = distill.student_target(teacher, counts, 0.25, True, (3, 4))
    np.testing.assert_allclose(mirrored, expected[:, ::-1], rtol=1e-6)
    # A crop (no counts): the teacher alone, whatever the weight.
    crop = distill.student_target(teacher, None, 0.25, False, (3, 4))
    np.testing.assert_allclose(crop, teacher / teacher.sum(), rtol=1e-6)


def test_a_teacher_with_mirror_images_is_mirror_symmetric():
    # The design's claim: the teacher's density of a mirror image is its
    # density of the image, mirrored, so mirror images need no teacher pass.
    model = aesthal.build_model(
        aesthal.ModelConfig(
            backbone="tiny",
            input_size=(32, 48),
            tasks=("saliency",),
            saliency_head="readout",
            centre_prior="fixed",
        )
    )
    image = np.random.default_rng(1).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    teacher = Ensemble([model], mirror=True, scales=(1, 1.5))
    direct = teacher.predict(image)["saliency"]
    flipped = teacher.predict(np.ascontiguousarray(image[:, ::-1]))["saliency"]
    np.testing.assert_allclose(flipped, direct[:, ::-1], rtol=1e-5, atol=1e-9)


@pytest.mark.slow
def test_teacher_then_student_on_dummy_osie(tmp_path):
    dummy = pathlib.Path(osie_dataset_builder.__file__).parent / "dummy_data"
    teacher_model = tmp_path / "teacher.keras"
    model = aesthal.build_model(
        aesthal.ModelConfig(
            backbone="tiny",
            input_size=(32, 48),
            tasks=("saliency",),
            saliency_head="readout",
            centre_prior="fixed",
        )
    )
    model(np.zeros((1, 32, 48, 3), np.float32))
    model.save(teacher_model)
    data = [
        f"--manual_dir={dummy}",
        f"--data_dir={tmp_path / 'tfds'}",
        # The dummy data's two training images: one to train on, one to
        # validate on.
        "--train_split=train[:1]",
        "--validation_split=train[1:]",
    ]
    teacher_dir = tmp_path / "teacher"
    teacher = [
        sys.executable,
        "experiments/distill.py",
        "--mode=teacher",
        f"--teacher={teacher_model}",
        "--scales=1",
        "--views_per_image=3",
        "--shard_size=1",
        "--map_height=12",
        "--map_width=16",
        f"--output_dir={teacher_dir}",
        *data,
    ]
    done = fork_run(teacher, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    shards = sorted(teacher_dir.glob("shard_*.npz"))
    assert [s.name for s in shards] == ["shard_0000.npz"]
    with np.load(shards[0]) as stored:
        assert stored["image_index"].tolist() == [0, 0, 0]
        assert stored["view_index"].tolist() == [0, 1, 2]
        maps = stored["maps"].astype(np.float64)
    assert maps.shape == (3, 12, 16)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 12 * 16, rtol=2e-3)
    # Resumable: a rerun writes nothing new.
    mtimes = [s.stat().st_mtime_ns for s in shards]
    assert fork_run(teacher, cwd=REPO).returncode == 0
    assert [s.stat().st_mtime_ns for s in shards] == mtimes
    # Other settings into the same folder: refused, naming the folder.
    other = fork_run([*teacher, "--views_per_image=4"], cwd=REPO)
    assert other.returncode != 0 and str(teacher_dir) in other.stderr

    student_dir = tmp_path / "student"
    student_command = [
        sys.executable,
        "experiments/distill.py",
        "--mode=student",
        f"--teacher_dir={teacher_dir}",
        "--backbone=tiny",
        "--backbone_weights=",
        "--frozen_up_to=stage2",
        "--readout_taps=stage3,stage4",
        "--input_height=32",
        "--input_width=48",
        "--epochs=2",
        "--batch_size=2",
        *data,
        f"--output_dir={student_dir}",
    ]
    student = fork_run(student_command, cwd=REPO)
    assert student.returncode == 0, student.stderr[-2000:]
    history = json.loads((student_dir / "history.json").read_text())
    # 1 image x 3 views x (view, mirror) = 6 examples: 3 steps of 2.
    assert json.loads((student_dir / "train_time.json").read_text())["examples"] == 6
    assert len(history["val_saliency_loss"]) == 2
    assert all(np.isfinite(history["loss"]))
    trained = aesthal.inference.load_model(student_dir / "model.keras")
    assert trained.config.tasks == ("saliency",)
    assert trained.config.frozen_up_to == "stage2"
    # A second student of the same trunk reuses the cached prefix features;
    # --init_from starts it from the first (same network).
    caches = list(teacher_dir.glob("features_*.npz"))
    assert len(caches) == 1
    again = fork_run(
        [
            *student_command[:-1],
            f"--output_dir={tmp_path / 'again'}",
            f"--init_from={student_dir / 'model.keras'}",
            "--epochs=1",
        ],
        cwd=REPO,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"student features: {caches[0]}" in again.stdout
