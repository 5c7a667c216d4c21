"""The shipped real-photo model (aesthal.released.DEFAULT): its file, its maps,
its documented OSIE test score.

The stored maps (tests/fixtures/shipped_maps.npz) were written by running this
file as a script (`python tests/test_shipped_model.py`) when the model was
released; a changed weight, a changed resize step or a changed prior changes
them. Each is the model's map of a photo at the photo's size, block-averaged to
30x40 cells (the maps are 600x800 or 120x160), float64.
"""

from __future__ import annotations

import pathlib
import re
import sys

import cv2
import numpy as np
import pytest

import aesthal
from aesthal import released

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "shipped_maps.npz"
OSIE = REPO.parent / "shared" / "data" / "osie"
OSIE_PHOTOS = ("1601.jpg", "1650.jpg", "1699.jpg")  # OSIE test split images
MODEL_CARD = REPO / "docs" / "model_card.md"


def generated_photo() -> np.ndarray:
    """A 120x160 RGB picture computed without randomness: a sky gradient,
    a dark ground, a red disk off centre and a white bar."""
    rows, cols = np.mgrid[0:120, 0:160].astype(np.float64)
    image = np.zeros((120, 160, 3))
    image[..., 2] = 150 + 80 * (1 - rows / 120)
    image[..., 1] = 120 + 40 * cols / 160
    image[..., 0] = 90
    image[80:] = (60, 50, 40)
    disk = (rows - 45) ** 2 + (cols - 115) ** 2 < 15**2
    image[disk] = (220, 30, 30)
    image[95:100, 20:70] = 255
    return image.astype(np.uint8)


def block_mean(density: np.ndarray, cells=(30, 40)) -> np.ndarray:
    h, w = density.shape
    ch, cw = cells
    return density.reshape(ch, h // ch, cw, w // cw).mean(axis=(1, 3))


def read_rgb(path: pathlib.Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def predictor():
    return aesthal.pretrained()


@pytest.fixture(scope="module")
def stored():
    with np.load(FIXTURE) as data:
        return dict(data)


def _check(predictor, stored, key, image):
    density = predictor.predict(image)["saliency"]
    assert density.shape == image.shape[:2]
    np.testing.assert_allclose(density.sum(), 1.0, rtol=1e-5)
    want = stored[key]
    got = block_mean(density.astype(np.float64))
    # The same weights on another CPU (oneDNN kernels, summation order)
    # differ by ~1e-5 of the maximum; a retrained or altered model by far more.
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * want.max())


def test_the_default_is_a_registered_release_with_a_hash():
    release = released.RELEASES[released.DEFAULT]
    assert re.fullmatch("[0-9a-f]{64}", release.sha256)
    path = pathlib.Path(released.__file__).parent / f"{release.name}.npz"
    assert path.stat().st_size < 25e6  # the limit


def test_shipped_model_maps_of_a_generated_photo(predictor, stored):
    # Loaded offline from the package (load_model checks the sha256 first).
    assert predictor.tasks == ("saliency",)
    _check(predictor, stored, "generated", generated_photo())


def test_shipped_model_maps_of_three_osie_test_photos(predictor, stored, osie_dir):
    for name in OSIE_PHOTOS:
        _check(predictor, stored, name, read_rgb(osie_dir / "data" / "stimuli" / name))


def documented_nss() -> float:
    """The OSIE test NSS the model card states (its marked line)."""
    text = MODEL_CARD.read_text()
    match = re.search(r"<!-- shipped-osie-test-nss: ([0-9.]+) -->", text)
    assert match, f"{MODEL_CARD} lost its shipped-osie-test-nss marker"
    return float(match.group(1))


@pytest.mark.slow
def test_osie_test_nss_is_the_documented_one(predictor, osie_dir, real_osie_build):
    """The model row's NSS of `aesthal evaluate` on the OSIE test split.

    The data set is the session's one build of the real files
    (conftest.real_osie_build), which tests/datasets/test_osie.py checks.

    The same prediction pass as `report.evaluate` (`report.predict_split`),
    scored with the NSS it uses, `saliency.nss` per image against the binary
    map of the fixations, averaged over the images with fixations
    (tests/evaluation/test_tables.py checks that the table's NSS is exactly
    that). The other seven metrics, their metric-specific maps and the
    baselines' rows, which the documented number does not read, are left out:
    ~40 s of numpy on the 2-core machine.
    """
    from aesthal.config import DataConfig
    from aesthal.evaluation import report
    from aesthal.metrics import saliency

    data_dir, _ = real_osie_build
    data = DataConfig(dataset="osie", data_dir=str(data_dir), manual_dir=str(osie_dir))
    _, pairs = report.predict_split(predictor, data, data.test_split)
    scores = []
    for example, prediction in pairs:
        truth = np.asarray(example.fixation_map)
        points = np.asarray(example.fixations, np.float64).reshape(-1, 2)
        binary = saliency.fixation_points_to_map(points, truth.shape[:2])
        # As report.evaluate: an image without fixations, or with an all-zero
        # fixation map, is skipped.
        if example.has_saliency and binary.any() and truth.any():
            scores.append(saliency.nss(prediction["saliency"], binary))
    assert len(scores) == 100  # the OSIE test split, every photo scored
    nss = float(np.mean(scores))
    assert abs(nss - documented_nss()) <= 0.02, (nss, documented_nss())


if __name__ == "__main__":  # writes the stored maps (at a release)
    shipped = aesthal.pretrained()
    arrays = {"generated": block_mean(shipped.predict(generated_photo())["saliency"])}
    for name in OSIE_PHOTOS:
        density = shipped.predict(read_rgb(OSIE / "data" / "stimuli" / name))
        arrays[name] = block_mean(density["saliency"].astype(np.float64))
    np.savez_compressed(FIXTURE, **arrays)
    print(f"wrote {FIXTURE}", file=sys.stderr)
