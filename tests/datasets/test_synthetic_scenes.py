"""Tests of the synthetic_scenes generator and its TFDS builder."""

import math
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from aesthal import fixations as fixations_lib
from aesthal.datasets.synthetic_scenes import (
    generator,
    synthetic_scenes_dataset_builder,
)

TINY = generator.SceneConfig(height=32, width=48)
SMALL = generator.SceneConfig(height=48, width=64)


class SyntheticScenesTest(tfds.testing.DatasetBuilderTestCase):
    """The standard TFDS builder checks, on the tiny config."""

    DATASET_CLASS = synthetic_scenes_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["tiny"]
    SPLITS = {"train": 24, "validation": 8, "test": 8}
    # Generated data: nothing is downloaded, so there is no dummy_data/ folder;
    # the test case still wants an existing directory to point its mocks at.
    EXAMPLE_DIR = os.path.dirname(generator.__file__)


def _scenes(config, split, n, base_seed=0):
    return [
        generator.generate_scene(config, generator.example_seed(base_seed, split, i))
        for i in range(n)
    ]


def test_scene_shapes_dtypes_and_ranges():
    scene = generator.generate_scene(TINY, generator.example_seed(0, "train", 3))
    assert scene.image.shape == (32, 48, 3) and scene.image.dtype == np.uint8
    assert scene.true_density.shape == (32, 48)
    assert scene.true_density.dtype == np.float32
    assert scene.fixation_map.shape == (32, 48, 1)
    assert scene.fixation_map.dtype == np.uint16
    assert scene.fixation_map.max() == 65535  # min-max normalised blur
    assert scene.fixations.dtype == np.float32 and scene.fixations.shape[1] == 2
    assert np.all(scene.fixations[:, 0] >= 0) and np.all(scene.fixations[:, 0] <= 31)
    assert np.all(scene.fixations[:, 1] >= 0) and np.all(scene.fixations[:, 1] <= 47)
    # 8 observers, each 1 + Binomial(10, 0.5) fixations.
    assert 8 <= len(scene.fixations) <= 88
    assert scene.aesthetics_votes.shape == (10,)
    assert scene.aesthetics_votes.dtype == np.int32
    assert 50 <= scene.aesthetics_votes.sum() <= 200


def test_density_sums_to_one_and_has_uniform_floor():
    for scene in _scenes(TINY, "test", 10):
        d = scene.true_density
        assert abs(float(d.sum(dtype=np.float64)) - 1.0) < 1e-5
        # LAMBDA_U of the mass is uniform: every pixel has at least that share.
        assert d.min() >= generator.LAMBDA_U / d.size * (1 - 1e-5)


def test_determinism_by_seed_and_independence_of_order():
    a = generator.generate_scene(TINY, generator.example_seed(7, "train", 5))
    _ = generator.generate_scene(TINY, generator.example_seed(7, "train", 4))
    b = generator.generate_scene(TINY, generator.example_seed(7, "train", 5))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.true_density, b.true_density)
    np.testing.assert_array_equal(a.fixations, b.fixations)
    np.testing.assert_array_equal(a.aesthetics_votes, b.aesthetics_votes)
    other_split = generator.generate_scene(TINY, generator.example_seed(7, "test", 5))
    assert not np.array_equal(a.image, other_split.image)
    other_seed = generator.generate_scene(TINY, generator.example_seed(8, "train", 5))
    assert not np.array_equal(a.image, other_seed.image)


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        generator.example_seed(0, "dev", 0)


def test_fixation_map_is_the_blur_of_the_points():
    scene = generator.generate_scene(TINY, generator.example_seed(0, "train", 1))
    expected = fixations_lib.blur_fixation_map(
        fixations_lib.points_to_binary_map(scene.fixations, (32, 48)),
        generator.FIXATION_SIGMA * 48,
    )
    np.testing.assert_allclose(
        scene.fixation_map[..., 0] / 65535.0, expected, atol=1e-5
    )


def test_fixations_lie_where_density_is_high():
    # Mean density at the fixated pixels, in units of the uniform density 1/(HW).
    # Sampling from p gives E = HW * sum p^2 >= 1; a uniform sampler gives 1.
    ratios = []
    for scene in _scenes(SMALL, "train", 20):
        d = scene.true_density
        idx = np.floor(scene.fixations + 0.5).astype(int)
        at_fix = d[idx[:, 0], idx[:, 1]].mean() * d.size
        expected = float((d.astype(np.float64) ** 2).sum() * d.size)
        ratios.append(at_fix / expected)
        assert at_fix > 1.5
    # Agrees with sampling from p on average (each ratio is noisy, the mean is not).
    assert 0.8 < np.mean(ratios) < 1.2


def test_latent_score_formula_hand_worked():
    c = generator.Composition(
        thirds=1.0, subject=0.5, clutter=0.2, blur=0.0, exposure=0.5, harmony=-1.0
    )
    # 5.5 + 1.5 + 0.5 - 0.3 - 0 - 0.75 - 0.5
    assert generator.aesthetic_latent_score(c) == pytest.approx(5.95)


def test_thirds_factor_prefers_thirds_over_centre():
    # 97x121 image: the thirds point (32, 40) is exact, the centre is (48, 60).
    assert generator.thirds_factor(32, 40, 97, 121) == pytest.approx(1.0)
    centre = generator.thirds_factor(48, 60, 97, 121)
    assert centre == pytest.approx(math.exp(-(2 / 36) / (2 * 0.08**2)))
    assert centre < 0.02


def test_harmony_factor_hand_worked():
    assert generator.harmony_factor([0.1, 0.6]) == pytest.approx(1.0)  # complementary
    assert generator.harmony_factor([0.0, 0.25]) == pytest.approx(-1.0)  # quarter turn
    assert generator.harmony_factor([0.0, 0.0, 0.25]) == pytest.approx(-1 / 3)


def _mean_vote(votes):
    return float((votes * np.arange(1, 11)).sum() / votes.sum())


def test_votes_follow_composition():
    """Across scenes, the mean vote tracks the documented latent score."""
    scenes = _scenes(SMALL, "validation", 150)
    mean_votes = np.array([_mean_vote(s.aesthetics_votes) for s in scenes])
    noiseless = np.array(
        [
            np.clip(generator.aesthetic_latent_score(s.composition), 1.5, 9.5)
            for s in scenes
        ]
    )
    assert np.corrcoef(mean_votes, noiseless)[0, 1] > 0.85
    # Each factor moves the votes the documented way (univariate signs).
    for name, sign in [("thirds", 1), ("clutter", -1), ("blur", -1), ("exposure", -1)]:
        x = np.array([getattr(s.composition, name) for s in scenes])
        assert sign * np.corrcoef(mean_votes, x)[0, 1] > 0.1, name


def test_conspicuous_subject_drives_both_tasks():
    """The shared cause: a stronger subject takes more gaze and more votes."""
    scenes = _scenes(SMALL, "validation", 150)
    subject = np.array([s.composition.subject for s in scenes])
    mass = np.array([s.subject_mass for s in scenes])
    mean_votes = np.array([_mean_vote(s.aesthetics_votes) for s in scenes])
    assert np.corrcoef(subject, mass)[0, 1] > 0.5
    assert np.corrcoef(mass, mean_votes)[0, 1] > 0.2


def test_faces_are_conspicuous():
    """Faces carry the semantic prior 4 vs 1 for disks and squares."""
    face, other = [], []
    for s in _scenes(SMALL, "train", 120):
        for kind, w in zip(s.object_types, s.conspicuity, strict=True):
            (face if kind == "face" else other).append(w)
    assert np.median(face) > 2 * np.median(other)


def test_tfds_load_tiny_offline(tmp_path):
    ds = tfds.load("synthetic_scenes/tiny", split="test", data_dir=str(tmp_path))
    examples = list(tfds.as_numpy(ds))
    assert len(examples) == 8
    by_name = {ex["image/filename"].decode(): ex for ex in examples}
    ex = by_name["test_000002.png"]
    scene = generator.generate_scene(
        generator.SceneConfig(height=32, width=48), generator.example_seed(0, "test", 2)
    )
    np.testing.assert_array_equal(ex["image"], scene.image)
    np.testing.assert_array_equal(ex["fixation_map"], scene.fixation_map)
    np.testing.assert_array_equal(ex["fixations"], scene.fixations)
    np.testing.assert_array_equal(ex["true_density"], scene.true_density)
    np.testing.assert_array_equal(ex["aesthetics_votes"], scene.aesthetics_votes)
    assert ex["has_saliency"] and ex["has_aesthetics"]
