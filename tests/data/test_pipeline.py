"""Tests of aesthal.data.make_dataset and iterate_eval_examples."""

import os

import numpy as np
import pytest
import tensorflow as tf

from aesthal import data
from aesthal.config import TASKS
from aesthal.datasets.synthetic_scenes import (  # noqa: F401  (registers the builder)
    synthetic_scenes_dataset_builder,
)

SIZE = (8, 12)


def _both_labelled(n=30, h=8, w=12):
    """Examples whose image is filled with their index (an id that survives)."""
    idx = np.arange(n)
    maps = np.ones((n, h, w, 1), np.uint8)
    votes = np.zeros((n, 10), np.int32)
    votes[:, 0] = idx + 1  # unique vote vectors, to follow permutations
    votes[:, 5] = 3
    return tf.data.Dataset.from_tensor_slices(
        {
            "image": np.broadcast_to(idx[:, None, None, None], (n, h, w, 3)).astype(
                np.uint8
            ),
            "has_saliency": np.ones(n, bool),
            "has_aesthetics": np.ones(n, bool),
            "fixation_map": maps,
            "aesthetics_votes": votes,
        }
    )


def _saliency_only(n=40):
    return tf.data.Dataset.from_tensor_slices(
        {
            "image": np.full((n, 8, 12, 3), 1, np.uint8),
            "fixation_map": np.ones((n, 8, 12, 1), np.uint8),
            "fixations": np.full((n, 1, 2), 2.0, np.float32),
        }
    )


def _aesthetics_only(n=40):
    return tf.data.Dataset.from_tensor_slices(
        {
            "image": np.full((n, 8, 12, 3), 2, np.uint8),
            "aesthetics_votes": np.ones((n, 10), np.int32),
        }
    )


def _ids(ds):
    """Example ids (image values) and masks over one pass."""
    ids, sal, aes, votes = [], [], [], []
    for x, y, w in ds:
        ids.append(x.numpy()[:, 0, 0, 0].round().astype(int))
        sal.append(w["saliency"].numpy())
        aes.append(w["aesthetics"].numpy())
        votes.append(y["aesthetics"].numpy())
    return (
        np.concatenate(ids),
        np.concatenate(sal),
        np.concatenate(aes),
        np.concatenate(votes),
    )


def test_shapes_dtypes_and_masks_of_a_mixture():
    ds = data.make_dataset(
        [data.SourceSpec(_saliency_only()), data.SourceSpec(_aesthetics_only())],
        image_size=SIZE,
        batch_size=16,
        seed=1,
    )
    images, targets, weights = next(iter(ds))
    assert images.shape == (16, 8, 12, 3) and images.dtype == tf.float32
    assert targets["saliency"].shape == (16, 8, 12, 1)
    assert targets["aesthetics"].shape == (16, 10)
    assert weights["saliency"].shape == (16,) and weights["aesthetics"].shape == (16,)
    ids = images.numpy()[:, 0, 0, 0]
    sal_mass = targets["saliency"].numpy().sum(axis=(1, 2, 3))
    aes_mass = targets["aesthetics"].numpy().sum(axis=1)
    # Saliency-only examples have image value 1, aesthetics-only value 2.
    np.testing.assert_array_equal(weights["saliency"].numpy(), (ids == 1).astype(float))
    np.testing.assert_array_equal(
        weights["aesthetics"].numpy(), (ids == 2).astype(float)
    )
    np.testing.assert_allclose(sal_mass, (ids == 1).astype(float), atol=1e-5)
    np.testing.assert_allclose(aes_mass, 10.0 * (ids == 2), atol=1e-5)
    assert 0 < (ids == 1).sum() < 16
    # Static shapes (drop_remainder defaults to training=True).
    assert ds.element_spec[0].shape.as_list() == [16, 8, 12, 3]


def test_mixture_honours_weights():
    ds = data.make_dataset(
        [
            data.SourceSpec(_saliency_only(), weight=3.0),
            data.SourceSpec(_aesthetics_only(), weight=1.0),
        ],
        image_size=SIZE,
        batch_size=100,
        seed=3,
    )
    share = np.mean([w["saliency"].numpy().mean() for _, _, w in ds.take(20)])
    # 2000 draws with p = 0.75: sd 0.0097; a fixed seed makes this deterministic.
    assert share == pytest.approx(0.75, abs=0.04)


def test_deterministic_given_seed():
    def first_batches(seed):
        ds = data.make_dataset(
            data.SourceSpec(_both_labelled(), permute_labels=("aesthetics",)),
            image_size=SIZE,
            batch_size=4,
            seed=seed,
        )
        return [x.numpy() for x, _, _ in ds.take(10)]

    a, b, c = first_batches(5), first_batches(5), first_batches(6)
    # Exact: the same per-example ops on the same examples in the same order
    # (no reduction across examples), twice in this process.
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_random_flip_flips_about_half():
    n = 64
    # Left half dark, right half bright: a flip is visible in the first pixel.
    image = np.zeros((n, 8, 12, 3), np.uint8)
    image[:, :, 6:] = 200
    ds = data.make_dataset(
        data.SourceSpec(
            tf.data.Dataset.from_tensor_slices({"image": image}), drop_unlabelled=False
        ),
        image_size=SIZE,
        batch_size=n,
        seed=0,
    )
    x, _, _ = next(iter(ds))
    flipped = x.numpy()[:, 0, 0, 0] > 100
    assert 16 < flipped.sum() < 48
    eval_ds = data.make_dataset(
        data.SourceSpec(
            tf.data.Dataset.from_tensor_slices({"image": image}), drop_unlabelled=False
        ),
        image_size=SIZE,
        batch_size=n,
        training=False,
    )
    x, _, _ = next(iter(eval_ds))
    assert not np.any(x.numpy()[:, 0, 0, 0] > 100)  # no flips when not training


@pytest.mark.parametrize("mode", ["independent", "disjoint", "nested"])
def test_label_budgets_exact_and_deterministic(mode):
    def run(seed, tasks=TASKS):
        spec = data.SourceSpec(
            _both_labelled(),
            label_budget={"saliency": 7, "aesthetics": 11},
            budget_mode=mode,
            tasks=tasks,
            seed=seed,
        )
        ids, sal, aes, _ = _ids(
            data.make_dataset(spec, image_size=SIZE, batch_size=5, training=False)
        )
        return set(ids[sal == 1]), set(ids[aes == 1]), ids

    sal, aes, ids = run(0)
    assert len(sal) == 7 and len(aes) == 11
    if mode == "disjoint":
        assert not sal & aes and len(ids) == 18  # unlabelled examples dropped
    elif mode == "nested":
        assert sal < aes and len(ids) == 11
    else:
        assert len(ids) == len(sal | aes)
    assert run(0)[:2] == (sal, aes)
    assert run(1)[:2] != (sal, aes)
    # Masking a task does not change which examples carry the other's labels.
    assert run(0, tasks=("aesthetics",))[1] == aes


def test_nested_budget_larger_than_the_data_is_an_error():
    spec = data.SourceSpec(
        _both_labelled(10),
        label_budget={"saliency": 4, "aesthetics": 11},
        budget_mode="nested",
    )
    with pytest.raises(ValueError, match=r"only 6 more examples .* beyond"):
        data.make_dataset(spec, image_size=SIZE, batch_size=2)


def test_unknown_budget_mode_is_an_error():
    with pytest.raises(ValueError, match="budget_mode"):
        data.SourceSpec("synthetic_scenes/tiny", budget_mode="overlap")


def test_label_budget_too_large_is_an_error():
    spec = data.SourceSpec(_both_labelled(10), label_budget={"saliency": 11})
    with pytest.raises(
        ValueError, match=r"label_budget\['saliency'\] = 11 but only 10"
    ):
        data.make_dataset(spec, image_size=SIZE, batch_size=2)


def test_tasks_drop_a_tasks_labels():
    spec = data.SourceSpec(_both_labelled(), tasks=("aesthetics",))
    ids, sal, aes, _ = _ids(
        data.make_dataset(spec, image_size=SIZE, batch_size=10, training=False)
    )
    assert len(ids) == 30 and sal.sum() == 0 and aes.sum() == 30


def test_permutation_is_a_real_permutation():
    spec = data.SourceSpec(_both_labelled(), permute_labels=("aesthetics",), seed=4)
    ids, _, _, votes = _ids(
        data.make_dataset(spec, image_size=SIZE, batch_size=10, training=False)
    )
    np.testing.assert_array_equal(ids, np.arange(30))  # images stay in place
    owners = votes[:, 0].astype(int) - 1  # whose votes each image now carries
    assert sorted(owners) == list(range(30))  # every vote vector used once
    assert (owners != ids).sum() >= 20  # and most moved
    np.testing.assert_array_equal(votes[:, 5], 3)  # vectors moved whole
    spec_again = data.SourceSpec(
        _both_labelled(), permute_labels=("aesthetics",), seed=4
    )
    again = _ids(
        data.make_dataset(spec_again, image_size=SIZE, batch_size=10, training=False)
    )
    np.testing.assert_array_equal(again[3], votes)


def _marked_saliency(n=12, h=8, w=12):
    """Example i: image filled with i, a one-hot map at flat pixel 5 + i and
    one fixation on that pixel, votes [i + 1, 0, ..., 0]."""
    idx = np.arange(n)
    maps = np.zeros((n, h * w), np.float32)
    maps[idx, 5 + idx] = 1.0
    points = np.stack([(5 + idx) // w, (5 + idx) % w], axis=-1).astype(np.float32)
    votes = np.zeros((n, 10), np.int32)
    votes[:, 0] = idx + 1
    return tf.data.Dataset.from_tensor_slices(
        {
            "image": np.broadcast_to(idx[:, None, None, None], (n, h, w, 3)).astype(
                np.uint8
            ),
            "has_saliency": np.ones(n, bool),
            "has_aesthetics": np.ones(n, bool),
            "fixation_map": maps.reshape(n, h, w, 1),
            "fixations": points[:, None, :],
            "aesthetics_votes": votes,
        }
    )


def _map_owners(spec, saliency_target="map"):
    """(image ids, whose map each example carries (-1: none), votes[:, 0])."""
    ds = data.make_dataset(
        spec,
        image_size=(8, 12),
        batch_size=12,
        training=False,
        saliency_target=saliency_target,
    )
    ids, owners, votes = [], [], []
    for x, y, w in ds:
        ids.append(x.numpy()[:, 0, 0, 0].round().astype(int))
        flat = y["saliency"].numpy().reshape(len(x), -1)
        np.testing.assert_allclose(flat.sum(1), w["saliency"].numpy(), atol=1e-6)
        owners.append(np.where(flat.max(1) > 0.99, flat.argmax(1) - 5, -1))
        votes.append(y["aesthetics"].numpy()[:, 0])
    return np.concatenate(ids), np.concatenate(owners), np.concatenate(votes)


def test_permutation_of_saliency_moves_maps_and_fixations():
    ids, owners, votes = _map_owners(_marked_spec())
    np.testing.assert_array_equal(ids, np.arange(12))  # images stay in place
    np.testing.assert_array_equal(votes, np.arange(12) + 1)  # aesthetics too
    assert sorted(owners) == list(range(12))  # every map used once
    assert (owners != ids).sum() >= 8  # and most moved
    # The fixation-count target is built from the moved fixations: the same
    # owners, pixel for pixel.
    _, owners_from_points, _ = _map_owners(_marked_spec(), "fixation_counts")
    np.testing.assert_array_equal(owners_from_points, owners)
    # The same seed, the same permutation; another seed, another one.
    np.testing.assert_array_equal(_map_owners(_marked_spec())[1], owners)
    assert (_map_owners(_marked_spec(seed=5))[1] != owners).any()
    # Without the edit, every example keeps its own map.
    plain = data.SourceSpec(_marked_saliency(), seed=4)
    np.testing.assert_array_equal(_map_owners(plain)[1], np.arange(12))


def _marked_spec(seed=4, **kwargs):
    return data.SourceSpec(
        _marked_saliency(), permute_labels=("saliency",), seed=seed, **kwargs
    )


def test_permutation_of_saliency_stays_inside_the_budget():
    spec = _marked_spec(label_budget={"saliency": 6}, drop_unlabelled=False)
    ids, owners, _ = _map_owners(spec)
    labelled = owners >= 0
    assert labelled.sum() == 6
    # The 6 labelled examples swap maps among themselves only.
    assert sorted(owners[labelled]) == sorted(ids[labelled])
    assert (owners[labelled] != ids[labelled]).any()
    # The same 6 are labelled as without the permutation (the budget's draw).
    plain = data.SourceSpec(
        _marked_saliency(),
        label_budget={"saliency": 6},
        drop_unlabelled=False,
        seed=4,
    )
    np.testing.assert_array_equal(_map_owners(plain)[1] >= 0, labelled)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    import tensorflow_datasets as tfds

    path = str(tmp_path_factory.mktemp("tfds"))
    tfds.builder("synthetic_scenes/tiny", data_dir=path).download_and_prepare()
    return path


def test_tfds_source_and_budget_pass(tiny_dir):
    spec = data.SourceSpec(
        "synthetic_scenes/tiny", data_dir=tiny_dir, label_budget={"saliency": 5}
    )
    ds = data.make_dataset(spec, image_size=(16, 24), batch_size=4, training=False)
    sal = np.concatenate([w["saliency"].numpy() for _, _, w in ds])
    assert len(sal) == 24 and sal.sum() == 5  # aesthetics keeps all 24 examples
    x, y, w = next(iter(ds))
    assert x.shape == (4, 16, 24, 3)
    masses = y["saliency"].numpy().sum(axis=(1, 2, 3))
    np.testing.assert_allclose(masses, w["saliency"].numpy(), atol=1e-5)


def test_iterate_eval_examples_at_original_resolution(tiny_dir):
    from aesthal.datasets.synthetic_scenes import generator

    examples = list(
        data.iterate_eval_examples("synthetic_scenes/tiny", "test", tiny_dir)
    )
    assert len(examples) == 8
    ex = next(e for e in examples if e.filename == "test_000001.png")
    scene = generator.generate_scene(
        generator.SceneConfig(height=32, width=48), generator.example_seed(0, "test", 1)
    )
    np.testing.assert_array_equal(ex.image, scene.image)
    np.testing.assert_array_equal(ex.fixations, scene.fixations)
    np.testing.assert_array_equal(ex.true_density, scene.true_density)
    np.testing.assert_array_equal(ex.fixation_map, scene.fixation_map[..., 0])
    np.testing.assert_array_equal(ex.aesthetics_votes, scene.aesthetics_votes)
    assert ex.has_saliency and ex.has_aesthetics


def test_tfds_names_work_after_a_plain_import_aesthal(tmp_path):
    """`import aesthal` alone is enough for make_dataset("synthetic_scenes/...")
    (the README's Python example): the builders register themselves on use.
    Run in a fresh interpreter, since this test process imported them already."""
    import subprocess
    import sys

    code = (
        "import aesthal\n"
        "ds = aesthal.data.make_dataset('synthetic_scenes/tiny', image_size=(32, 48),"
        " batch_size=4, seed=0, cache=False)\n"
        "print(tuple(next(iter(ds))[0].shape))\n"
    )
    env = {**os.environ, "TFDS_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("(4, 32, 48, 3)")
