"""Tests for aesthal.crop: window sizes, the exact search, scoring, OSIE numbers."""

import itertools
import json
import pathlib
import sys

import cv2
import numpy as np
import pytest
from absl.testing import parameterized
from conftest import OSIE_DIR, background_fixture, fork_run
from scipy import stats

from aesthal import crop
from aesthal import fixations as fixlib

OSIE_RATIOS = ["1:1", "16:9", "9:16", "4:5"]


# --- ratios and window sizes -------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [("16:9", (16, 9)), ("1:1", (1, 1)), (" 4 : 5 ", (4, 5)), ("21:9", (21, 9))],
)
def test_parse_ratio(text, expected):
    assert crop.parse_ratio(text) == expected


@pytest.mark.parametrize("bad", ["16x9", "0:1", "3:0", "-1:2", "1.5:1", "", "16:9:1"])
def test_parse_ratio_rejects_malformed(bad):
    with pytest.raises(ValueError, match="width:height"):
        crop.parse_ratio(bad)


def test_parse_ratio_rejects_non_string():
    with pytest.raises(ValueError, match="expected a string"):
        crop.parse_ratio((16, 9))


class WindowSizeTest(parameterized.TestCase):
    @parameterized.parameters(
        # The issue's OSIE windows (800x600 images; (height, width)).
        ((600, 800), "1:1", 1.0, (600, 600)),
        ((600, 800), "16:9", 1.0, (450, 800)),  # 800 * 9 / 16 = 450
        ((600, 800), "9:16", 1.0, (600, 338)),  # 600 * 9 / 16 = 337.5 -> 338
        ((600, 800), "4:5", 1.0, (600, 480)),
        ((600, 800), "4:3", 1.0, (600, 800)),  # the image's own ratio: all of it
        # Half away from zero where banker's rounding would go down:
        # 100 * 1 / 8 = 12.5 -> 13 (Python's round gives 12).
        ((100, 300), "1:8", 1.0, (100, 13)),
        ((100, 100), "8:1", 1.0, (13, 100)),
        # Scale multiplies the scale-1 sides: 450 * 0.5, 800 * 0.5.
        ((600, 800), "16:9", 0.5, (225, 400)),
        # 338 * 0.75 = 253.5 -> 254, 600 * 0.75 = 450.
        ((600, 800), "9:16", 0.75, (450, 254)),
        ((1, 1), "16:9", 1.0, (1, 1)),
    )
    def test_window_size(self, shape, ratio, scale, expected):
        self.assertEqual(crop.window_size(shape, ratio, scale), expected)

    def test_side_rounding_to_zero_is_an_error(self):
        with self.assertRaisesRegex(ValueError, "less extreme ratio or a larger"):
            crop.window_size((10, 100), "1:30", 1.0)  # width 10 / 30 -> 0
        with self.assertRaisesRegex(ValueError, "less extreme ratio or a larger"):
            crop.window_size((4, 4), "1:1", 0.1)  # 0.4 -> 0

    @parameterized.parameters(0.0, -0.5, 1.01, float("nan"))
    def test_bad_scale(self, scale):
        with self.assertRaisesRegex(ValueError, r"must be in \(0, 1\]"):
            crop.window_size((10, 10), "1:1", scale)


def test_centre_box_takes_the_smaller_offset_when_odd():
    assert crop.centre_box((600, 800), "9:16") == (0, 231, 600, 338)
    assert crop.centre_box((600, 800), "16:9") == (75, 0, 450, 800)
    # 20 - 11 = 9 free columns: 4 left, 5 right.
    assert crop.centre_box((11, 20), "1:1") == (0, 4, 11, 11)


# --- the search ----------------------------------------------------------------


def test_single_hot_pixel_gives_the_containing_window_nearest_the_centre():
    saliency = np.zeros((10, 20), np.float32)
    saliency[3, 17] = 1.0
    # 10x10 windows holding column 17 start at columns 8, 9 or 10; their
    # centres (12.5, 13.5, 14.5) are nearest the image's (9.5) for left = 8.
    assert crop.best_crops(saliency, ["1:1"]) == {"1:1": (0, 8, 10, 10)}
    tall = np.zeros((20, 10), np.float64)
    tall[2, 5] = 3.0
    # Rows 0..2 hold it; top = 2 is nearest the centre.
    assert crop.best_crops(tall, ["1:1"]) == {"1:1": (2, 0, 10, 10)}


def test_hot_pixel_with_scale():
    saliency = np.zeros((60, 80))
    saliency[59, 0] = 1.0
    # 16:9 at 0.5: 23x40 (22.5 -> 23); the corner pixel forces top 37, left 0.
    assert crop.best_crops(saliency, ["16:9"], scale=0.5) == {"16:9": (37, 0, 23, 40)}


def test_uniform_map_gives_the_centre_crop():
    # 0.1 is not exact in binary: the table's rounding must not break the tie.
    for shape in [(11, 20), (601, 803), (600, 800)]:
        saliency = np.full(shape, 0.1, np.float32)
        boxes = crop.best_crops(saliency, OSIE_RATIOS)
        assert boxes == {r: crop.centre_box(shape, r) for r in OSIE_RATIOS}


def test_all_zero_map_gives_the_centre_crop():
    boxes = crop.best_crops(np.zeros((600, 800)), OSIE_RATIOS)
    assert boxes == {r: crop.centre_box((600, 800), r) for r in OSIE_RATIOS}


def test_equally_near_ties_go_to_the_smaller_left():
    saliency = np.zeros((10, 40))
    saliency[5, 2] = saliency[5, 37] = 1.0
    # Windows holding column 2 start at 0..2, those holding 37 at 28..30; the
    # nearest of each (left 2, left 28) are both 13 px from the centre.
    assert crop.best_crops(saliency, ["1:1"]) == {"1:1": (0, 2, 10, 10)}


def test_mass_beats_centrality():
    saliency = np.zeros((10, 40))
    saliency[5, 19] = 1.0
    saliency[5, 0] = 1.5
    assert crop.best_crops(saliency, ["1:1"]) == {"1:1": (0, 0, 10, 10)}


def test_keys_follow_the_given_ratios():
    boxes = crop.best_crops(np.ones((6, 8)), ["9:16", "1:1", "9:16"])
    assert list(boxes) == ["9:16", "1:1"]


def _brute_force(saliency, win_h, win_w):
    """Every window summed directly; ties by (distance, top, left) in Python."""
    height, width = saliency.shape
    candidates = []
    for top, left in itertools.product(
        range(height - win_h + 1), range(width - win_w + 1)
    ):
        mass = saliency[top : top + win_h, left : left + win_w].sum()
        distance = (2 * top + win_h - height) ** 2 + (2 * left + win_w - width) ** 2
        candidates.append((-mass, distance, top, left))
    return min(candidates)


def _order(top, left, win_h, win_w, shape):
    """The tie rule's key: distance of the centres, then top, then left."""
    distance = (2 * top + win_h - shape[0]) ** 2 + (2 * left + win_w - shape[1]) ** 2
    return distance, top, left


class BruteForceTest(parameterized.TestCase):
    @parameterized.parameters(
        ((7, 9), "1:1", 1.0),
        ((7, 9), "16:9", 0.6),
        ((9, 7), "9:16", 1.0),
        ((12, 5), "4:5", 0.5),
        ((13, 17), "3:2", 0.8),
    )
    def test_integer_maps_with_ties(self, shape, ratio, scale):
        # Small integer counts: exact sums, many ties, the full tie rule.
        rng = np.random.default_rng(sum(shape))
        for _ in range(20):
            saliency = rng.integers(0, 3, size=shape) * (rng.random(shape) < 0.3)
            win_h, win_w = crop.window_size(shape, ratio, scale)
            _, _, top, left = _brute_force(saliency, win_h, win_w)
            boxes = crop.best_crops(saliency, [ratio], scale)
            self.assertEqual(boxes[ratio], (top, left, win_h, win_w))

    def test_random_float_maps(self):
        # The table and the direct sums add in other orders: compare masses
        # with a tolerance, and the tie rule only among clear ties.
        rng = np.random.default_rng(0)
        for shape, ratio in itertools.product(
            [(15, 20), (20, 15), (16, 16)], OSIE_RATIOS
        ):
            saliency = rng.random(shape).astype(np.float32) ** 4
            win_h, win_w = crop.window_size(shape, ratio)
            direct = saliency.astype(np.float64)
            tol = crop.TIE_TOLERANCE * direct.sum()
            neg_mass, *_ = _brute_force(direct, win_h, win_w)
            box = crop.best_crops(saliency, [ratio])[ratio]
            top, left = box[:2]
            self.assertEqual(box[2:], (win_h, win_w))
            mass = direct[top : top + win_h, left : left + win_w].sum()
            self.assertGreaterEqual(mass, -neg_mass - 1.5 * tol)
            # No window clearly tied with the best is before it in the order.
            for t, c in itertools.product(
                range(shape[0] - win_h + 1), range(shape[1] - win_w + 1)
            ):
                other = direct[t : t + win_h, c : c + win_w].sum()
                if other >= -neg_mass - 0.5 * tol:
                    self.assertLessEqual(
                        _order(top, left, win_h, win_w, shape),
                        _order(t, c, win_h, win_w, shape),
                    )
            self.assertAlmostEqual(
                crop.crop_image(saliency.astype(np.float64), box).sum(),
                -neg_mass,
                places=9,
            )


def test_summed_area_table_and_window_masses():
    saliency = np.arange(12, dtype=np.float64).reshape(3, 4)
    table = crop.summed_area_table(saliency)
    assert table.shape == (4, 5)
    assert table[2, 3] == saliency[:2, :3].sum() == 0 + 1 + 2 + 4 + 5 + 6
    masses = crop.window_masses(table, 2, 2)
    expected = [
        [saliency[t : t + 2, c : c + 2].sum() for c in range(3)] for t in range(2)
    ]
    np.testing.assert_array_equal(masses, expected)


# --- input errors ------------------------------------------------------------


@pytest.mark.parametrize(
    "saliency, match",
    [
        (np.ones((4, 4, 1)), r"2-D .*drop the channel axis"),
        (np.ones(4), "2-D"),
        (np.ones((0, 4)), "empty"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "1 values are NaN or infinite"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), "NaN or infinite"),
        (np.array([[1.0, -0.5], [0.0, 1.0]]), "negative values"),
        (np.array([["a", "b"]]), "expected numbers"),
    ],
)
def test_best_crops_rejects_bad_maps(saliency, match):
    with pytest.raises(ValueError, match=match):
        crop.best_crops(saliency, ["1:1"])


def test_best_crops_rejects_bad_ratios_and_scale():
    with pytest.raises(ValueError, match=r"a list of ratios, such as \['16:9'\]"):
        crop.best_crops(np.ones((4, 4)), "16:9")
    with pytest.raises(ValueError, match="'16/9'"):
        crop.best_crops(np.ones((4, 4)), ["1:1", "16/9"])
    with pytest.raises(ValueError, match=r"scale 2.0: must be in \(0, 1\]"):
        crop.best_crops(np.ones((4, 4)), ["1:1"], scale=2.0)


# --- applying boxes, scoring ---------------------------------------------------


def test_crop_image():
    image = np.arange(5 * 6 * 3).reshape(5, 6, 3)
    np.testing.assert_array_equal(crop.crop_image(image, (1, 2, 3, 4)), image[1:4, 2:6])
    gray = np.arange(30).reshape(5, 6)
    np.testing.assert_array_equal(crop.crop_image(gray, (0, 0, 5, 6)), gray)


def test_crop_image_rejects_boxes_outside():
    with pytest.raises(ValueError, match="reaches outside the 5x6 image"):
        crop.crop_image(np.zeros((5, 6, 3)), (1, 2, 5, 4))
    with pytest.raises(ValueError, match="top and left must be >= 0"):
        crop.crop_image(np.zeros((5, 6)), (-1, 0, 2, 2))
    with pytest.raises(ValueError, match=r"\(top, left, height, width\)"):
        crop.crop_image(np.zeros((5, 6)), (0, 0, 2))


def test_crop_of_best_box_has_the_ratio():
    image = np.zeros((600, 800, 3), np.uint8)
    boxes = crop.best_crops(np.ones((600, 800)), OSIE_RATIOS)
    shapes = {r: crop.crop_image(image, b).shape for r, b in boxes.items()}
    assert shapes == {
        "1:1": (600, 600, 3),
        "16:9": (450, 800, 3),
        "9:16": (600, 338, 3),
        "4:5": (600, 480, 3),
    }


def test_fixation_share_uses_the_nearest_pixel():
    box = (1, 1, 2, 2)  # rows 1..2, columns 1..2
    points = np.array(
        [
            [1.0, 1.0],  # in
            [2.49, 2.49],  # nearest pixel (2, 2): in
            [2.5, 1.0],  # nearest row 3: out
            [0.5, 1.0],  # nearest row 1 (half away from zero): in
            [np.nan, 0.0],  # dropped
        ]
    )
    assert crop.fixation_share(box, points) == 0.75


def test_fixation_share_matches_matlab_coordinates():
    # MATLAB (x=3, y=2) is 0-based (row 1, column 2).
    points = fixlib.from_matlab_xy([3.0], [2.0])
    assert crop.fixation_share((1, 2, 1, 1), points) == 1.0
    assert crop.fixation_share((2, 3, 1, 1), points) == 0.0


def test_fixation_share_errors():
    with pytest.raises(ValueError, match="no finite fixation point"):
        crop.fixation_share((0, 0, 2, 2), np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match=r"expected \[N, 2\]"):
        crop.fixation_share((0, 0, 2, 2), np.zeros((3, 3)))


# --- evaluation ----------------------------------------------------------------


def _two_images():
    """Two 4x8 images; 1:1 windows are 4x4."""
    map_a = np.zeros((4, 8))
    map_a[1, 6] = 1.0  # best 1:1 box: left 3 (left 4 also holds it, less central)
    map_b = np.zeros((4, 8))
    map_b[2, 1] = 1.0  # best 1:1 box: left 1
    fix_a = np.array([[1.0, 6.0], [1.0, 5.0], [0.0, 0.0], [3.0, 2.0]])
    fix_b = np.array([[2.0, 1.0], [0.0, 7.0]])
    return [map_a, map_b], [fix_a, fix_b]


def test_evaluate_crops_hand_worked():
    maps, points = _two_images()
    assert crop.best_crops(maps[0], ["1:1"])["1:1"] == (0, 3, 4, 4)
    assert crop.best_crops(maps[1], ["1:1"])["1:1"] == (0, 1, 4, 4)
    result = crop.evaluate_crops(maps, points, ["1:1"])["1:1"]
    assert result["scores"] == [0.5, 0.5]  # a: columns 6, 5 in; b: column 1 in
    assert result["mean"] == 0.5 and result["n"] == 2
    assert result["ci_low"] == result["ci_high"] == 0.5  # no spread


def test_evaluate_centre_crops_hand_worked():
    _, points = _two_images()
    # The 4x4 centre box of a 4x8 image covers columns 2..5.
    result = crop.evaluate_centre_crops([(4, 8), (4, 8, 3)], points, ["1:1"])
    scores = result["1:1"]["scores"]
    assert scores == [0.5, 0.0]
    low, high = stats.t.interval(0.95, 1, loc=0.25, scale=stats.sem(scores))
    assert result["1:1"]["mean"] == 0.25
    assert result["1:1"]["ci_low"] == pytest.approx(low)
    assert result["1:1"]["ci_high"] == pytest.approx(high)


def test_evaluate_errors_name_the_image():
    maps, points = _two_images()
    with pytest.raises(ValueError, match="differ in length: 2 vs 1"):
        crop.evaluate_crops(maps, points[:1], ["1:1"])
    with pytest.raises(ValueError, match="image 1: .*no finite fixation"):
        crop.evaluate_crops(maps, [points[0], np.zeros((0, 2))], ["1:1"])
    with pytest.raises(ValueError, match="image 0: saliency: .*negative"):
        crop.evaluate_crops([-maps[0] - 1, maps[1]], points, ["1:1"])


def test_observers_map_counts_and_blur():
    observers = [np.array([[1.0, 2.0], [1.2, 1.8]]), np.array([[3.0, 0.0]])]
    counts = crop.observers_map(observers, (4, 5))
    expected = np.zeros((4, 5), np.float32)
    expected[1, 2] = 2.0  # both points round to (1, 2): counted twice
    expected[3, 0] = 1.0
    np.testing.assert_array_equal(counts, expected)
    blurred = crop.observers_map(observers, (4, 5), sigma=1.0)
    np.testing.assert_allclose(blurred, fixlib.blur_fixation_map(expected, 1.0))


def test_osie_sigma_is_scaled_with_the_image():
    assert fixlib.osie_sigma((600, 800)) == 24.0
    assert fixlib.osie_sigma((300, 400, 3)) == 12.0
    with pytest.raises(ValueError, match="both sides >= 1"):
        fixlib.osie_sigma((0, 800))


def test_human_ceiling_hand_worked():
    # One 4x8 image, three observers; raw counts, 1:1 windows of 4x4.
    observers = [
        np.array([[1.0, 7.0]]),  # A
        np.array([[1.0, 6.0], [2.0, 7.0]]),  # B
        np.array([[0.0, 0.0]]),  # C
    ]
    # Leave A out: B + C counts, column 0 (1) vs columns 6-7 (2): box at
    # left 4 holds A's column 7 -> 1. Leave B out: A (col 7), C (col 0) tie
    # on mass; the boxes at left 0 and 4 are equally near the centre, the
    # smaller left wins -> B's columns 6, 7 are out -> 0. Leave C out: box at
    # left 4 -> C's column 0 is out -> 0.
    result = crop.evaluate_human_ceiling([observers], [(4, 8)], ["1:1"], blur=False)
    assert result["1:1"]["scores"] == [pytest.approx(1 / 3)]


def test_human_ceiling_needs_two_observers():
    with pytest.raises(ValueError, match="image 0: 1 observer"):
        crop.evaluate_human_ceiling(
            [[np.array([[1.0, 1.0]]), np.zeros((0, 2))]], [(4, 8)], ["1:1"]
        )


# --- OSIE: the issue's table ---------------------------------------------------


def _osie_test_split(osie_dir):
    """OSIE's test split: per-observer fixations (project convention), shapes."""
    from aesthal.datasets.osie import osie_dataset_builder as osie

    entries = osie.load_fixations_mat(str(osie_dir / "data" / "eye" / "fixations.mat"))
    observers, shapes = [], []
    for number in range(1601, 1701):
        name = f"{number}.jpg"
        observers.append(osie.entry_observers(entries[name], name))
        image = cv2.imread(str(osie_dir / "data" / "stimuli" / name))
        shapes.append(image.shape[:2])
    return observers, shapes


@pytest.mark.real_data
def test_osie_centre_crop_matches_the_issue(osie_dir):
    observers, shapes = _osie_test_split(osie_dir)
    assert set(shapes) == {(600, 800)} and len(observers) == 100
    assert all(len(o) == 15 for o in observers)
    pooled = [np.concatenate(o) for o in observers]
    result = crop.evaluate_centre_crops(shapes, pooled, OSIE_RATIOS)
    means = {r: round(result[r]["mean"], 3) for r in OSIE_RATIOS}
    assert means == {"1:1": 0.936, "16:9": 0.948, "9:16": 0.628, "4:5": 0.817}


_CEILING_SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from aesthal import crop
from conftest import OSIE_DIR
from test_crop import OSIE_RATIOS, _osie_test_split

observers, shapes = _osie_test_split(OSIE_DIR)
result = crop.evaluate_human_ceiling(observers, shapes, OSIE_RATIOS)
print(json.dumps({r: result[r]["mean"] for r in OSIE_RATIOS}))
"""


@background_fixture
def osie_ceiling_means(tmp_path):
    """The human ceiling's mean per ratio on OSIE's 100 test images (leave one
    observer out, blurred counts, sigma 24 px: about a minute), computed in a
    process of its own from the session's start (conftest.background_fixture);
    None without the data (the test skips on `osie_dir` first)."""
    if not (OSIE_DIR / "data" / "eye" / "fixations.mat").exists():
        return None
    tests = pathlib.Path(__file__).resolve().parent
    result = fork_run(  # forked from conftest's fork server
        [sys.executable, "-c", _CEILING_SCRIPT, str(tests)], timeout=900, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.real_data
@pytest.mark.slow
def test_osie_human_ceiling_matches_the_issue(osie_dir, osie_ceiling_means):
    # crop.evaluate_human_ceiling on all 100 test images and every ratio, run
    # once by the fixture.
    means = {r: round(osie_ceiling_means[r], 3) for r in OSIE_RATIOS}
    assert means == {"1:1": 0.969, "16:9": 0.980, "9:16": 0.760, "4:5": 0.887}


def test_format_markdown_table():
    results = {
        "model": {
            "1:1": {"mean": 0.5, "ci_low": 0.25, "ci_high": 0.75, "n": 2},
            "16:9": {"mean": 1.0, "ci_low": None, "ci_high": None, "n": 1},
        },
        "centre crop": {"1:1": {"mean": 0.125, "ci_low": 0.0, "ci_high": 0.25}},
    }
    assert crop.format_markdown_table(results, digits=2) == (
        "| strategy | 1:1 | 16:9 |\n"
        "|---|---|---|\n"
        "| model | 0.50 [0.25, 0.75] | 1.00 |\n"
        "| centre crop | 0.12 [0.00, 0.25] | - |"
    )
