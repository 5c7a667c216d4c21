"""experiments/map_checks.py: cached maps, their mixtures and scores
(hand-worked on 6x8 maps), and a model's maps cached on OSIE's dummy data."""

import pathlib

import numpy as np
import pytest
from conftest import load_script

import aesthal
from aesthal.config import DataConfig
from aesthal.datasets.osie import osie_dataset_builder
from aesthal.evaluation import report
from aesthal.inference import Ensemble

REPO = pathlib.Path(__file__).resolve().parents[2]
checks = load_script(REPO / "experiments" / "map_checks.py", "map_checks")


def _write(path, maps, fixations):
    np.savez(
        path,
        maps=np.asarray(maps, np.float16),
        **checks._pack(fixations),
        files=np.array([f"{i}.jpg" for i in range(len(maps))]),
    )


@pytest.fixture
def two_caches(tmp_path):
    # One 6x8 image, fixations at (3, 0) and (3, 7). Map a: 1 everywhere and
    # 101 in column 0; map b the mirror (101 in column 7).
    a = np.ones((6, 8))
    a[:, 0] = 101.0
    fixations = [np.array([[3.0, 0.0], [3.0, 7.0]], np.float32)]
    _write(tmp_path / "a.npz", [a], fixations)
    _write(tmp_path / "b.npz", [a[:, ::-1]], fixations)
    _write(tmp_path / "uniform.npz", [np.ones((6, 8))], fixations)
    return tmp_path


def test_mixture_and_power(two_caches):
    a, b = two_caches / "a.npz", two_caches / "b.npz"
    maps, fixations, files = checks.mixture([str(a), str(b)])
    assert files == ["0.jpg"] and len(fixations) == 1
    # The mirror-symmetric mixture: 51 in columns 0 and 7, 1 elsewhere.
    expected = np.ones((6, 8))
    expected[:, [0, 7]] = 51.0
    np.testing.assert_allclose(maps[0], expected / expected.sum())
    sharper, _, _ = checks.mixture([str(a)], power=2.0)
    one = np.ones((6, 8))
    one[:, 0] = 101.0**2
    np.testing.assert_allclose(sharper[0], one / one.sum())


def test_score_rows_hand_worked(two_caches):
    a, uniform = two_caches / "a.npz", two_caches / "uniform.npz"
    table = checks.score_rows([f"a={a}", f"uniform={uniform}"], ["1:1"])
    # 1:1 in 6x8 is 6x6 at left 0, 1 or 2: map a keeps columns 0..5 (one of
    # the two fixations); on the uniform map every window ties and the centre
    # one (left 1, columns 1..6) keeps neither.
    # Log-likelihood of a: mean(log2(101/648*48), log2(1/648*48)) bits.
    ll_a = (np.log2(101 / 648 * 48) + np.log2(1 / 648 * 48)) / 2
    values = np.ones((6, 8))
    values[:, 0] = 101.0
    z = (values - values.mean()) / values.std(ddof=1)
    nss_a = (z[3, 0] + z[3, 7]) / 2
    rows = {line.split(" | ")[0]: line for line in table.splitlines()}
    assert rows["| a"] == f"| a | 0.5000 | {nss_a:.4f} | {ll_a:.4f} |"
    # The uniform map: NSS 0 (a constant map), 0 bits against uniform.
    assert rows["| uniform"] == "| uniform | 0.0000 | 0.0000 | 0.0000 |"
    assert rows["| Δ uniform − first"].startswith(
        f"| Δ uniform − first | -0.5000 [n/a (one image)] | {-nss_a:+.4f} ["
    )


def test_rows_of_other_images_are_a_clear_error(two_caches):
    # The differences pair image by image: a row cached on other images
    # (here the same count, other file names) must not be paired silently.
    other = two_caches / "other.npz"
    with np.load(two_caches / "a.npz") as stored:
        np.savez(
            other,
            **{k: stored[k] for k in ("maps", "points", "counts")},
            files=np.array(["elsewhere.jpg"]),
        )
    with pytest.raises(ValueError, match="other images than the first row"):
        checks.score_rows([f"a={two_caches / 'a.npz'}", f"o={other}"], ["1:1"])


@pytest.mark.parametrize(
    "row, message",
    [
        ("no label", "give 'label=a.npz"),
        ("x=a.npz^y", "power 'y' is not a number"),
        ("x=a.npz^0", "the power must be > 0"),
    ],
)
def test_bad_rows_are_clear_errors(row, message):
    with pytest.raises(ValueError, match=message):
        checks.parse_row(row)


def _dummy_osie(tmp_path):
    """OSIE's dummy data (one test image, per-observer fixations) and an
    untrained tiny model."""
    dummy = pathlib.Path(osie_dataset_builder.__file__).parent / "dummy_data"
    data = DataConfig(
        dataset="osie",
        data_dir=str(tmp_path / "tfds"),
        manual_dir=str(dummy),
        tasks=("saliency",),
    )
    return data, aesthal.build_model(aesthal.ModelConfig(input_size=(32, 48)))


def test_cache_maps_holds_the_ensemble_prediction(tmp_path):
    data, model = _dummy_osie(tmp_path)
    count = checks.cache_maps(model, data, "test", tmp_path / "m.npz", True, "1,1.5")
    assert count == 1
    maps, fixations, files = checks.mixture([str(tmp_path / "m.npz")])
    assert files == ["1601.jpg"]
    _, pairs = report.predict_split(
        Ensemble([model], mirror=True, scales=(1, 1.5)), data, "test"
    )
    example, prediction = next(iter(pairs))
    np.testing.assert_allclose(maps[0], prediction["saliency"], rtol=2e-3)
    np.testing.assert_array_equal(fixations[0], example.fixations)


def test_fixations_of_several_images_round_trip_without_pickle(tmp_path):
    points = [np.array([[1.0, 2.0]]), np.zeros((0, 2)), np.array([[3, 4], [5, 6.0]])]
    np.savez(tmp_path / "f.npz", **checks._pack(points))
    with np.load(tmp_path / "f.npz") as stored:  # allow_pickle is False
        back = checks._unpack(stored)
    assert [p.tolist() for p in back] == [p.tolist() for p in points]


def test_baselines_rows_and_share_of_the_gap(tmp_path):
    # OSIE's dummy data (one test image with per-observer fixations): the
    # centre-crop and ceiling rows are those of aesthal.crop on the data set's
    # observers, and a row's share is (row - centre) / (ceiling - centre).
    from aesthal import crop
    from aesthal.data import prepare
    from aesthal.evaluation import crop_report

    data, model = _dummy_osie(tmp_path)
    checks.cache_maps(model, data, "test", tmp_path / "m.npz", False, "1")
    maps, fixations, _ = checks.mixture([str(tmp_path / "m.npz")])
    observers = crop_report.observer_fixations(prepare.prepare_data(data), "test")
    assert len(observers["1601.jpg"]) >= 2
    ratios = ["1:1", "9:16"]
    shape = [maps[0].shape]
    centre = crop.evaluate_centre_crops(shape, fixations, ratios)
    ceiling = crop.evaluate_human_ceiling([observers["1601.jpg"]], shape, ratios)
    model_share = crop.evaluate_crops(maps, fixations, ratios)

    table = checks.score_rows([f"m={tmp_path / 'm.npz'}"], ratios, data, "test")
    rows = {line.split(" | ")[0]: line for line in table.splitlines()}
    c = [centre[r]["mean"] for r in ratios]
    h = [ceiling[r]["mean"] for r in ratios]
    assert c[0] != h[0] and c[1] != h[1]  # a gap to share
    assert rows["| centre crop"] == f"| centre crop | {c[0]:.4f} | {c[1]:.4f} |"
    assert rows["| human ceiling"] == f"| human ceiling | {h[0]:.4f} | {h[1]:.4f} |"
    shares = [
        (model_share[r]["mean"] - c[i]) / (h[i] - c[i]) for i, r in enumerate(ratios)
    ]
    assert rows["| m: share of the gap"] == (
        f"| m: share of the gap | {shares[0]:.3f} | {shares[1]:.3f} |"
    )
    # Maps cached on another split than the one named: a clear error.
    np.savez(
        tmp_path / "other.npz",
        maps=np.load(tmp_path / "m.npz")["maps"],
        **checks._pack(fixations),
        files=np.array(["9999.jpg"]),
    )
    with pytest.raises(ValueError, match="not in osie \\[test\\].*9999.jpg"):
        checks.score_rows([f"o={tmp_path / 'other.npz'}"], ratios, data, "test")
