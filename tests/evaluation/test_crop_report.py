"""Tests for aesthal.evaluation.crop_report on OSIE's dummy data (hand-worked crops)."""

import collections
import json

import numpy as np
import pytest

import aesthal
from aesthal import crop
from aesthal.config import DataConfig
from aesthal.datasets.osie import osie_dataset_builder
from aesthal.evaluation import crop_report
from aesthal.inference import Predictor

DUMMY = osie_dataset_builder.__file__.rsplit("/", 1)[0] + "/dummy_data"


@pytest.fixture(scope="module")
def osie_dummy(tmp_path_factory):
    """OSIE's dummy data: test = 1601.jpg (64x48), two observers."""
    data = DataConfig(
        dataset="osie",
        data_dir=str(tmp_path_factory.mktemp("tfds")),
        manual_dir=DUMMY,
        tasks=("saliency",),
    )
    model = aesthal.build_model(aesthal.ModelConfig(input_size=(32, 48)))
    return data, Predictor(model)


def test_crop_report_on_osie_dummy(osie_dummy, tmp_path):
    data, predictor = osie_dummy
    result = crop_report.evaluate(predictor, data, tmp_path, ["1:1", "16:9"])
    assert result["files"] == ["1601.jpg"] and result["skipped"] == 0
    rows = result["rows"]
    assert list(rows) == ["model", "centre crop", "human ceiling"]
    # 1601.jpg is 48x64 (h x w) with fixations (row, col): observer 0 at
    # (0, 0) and (47, 63), observer 1 at (19, 31.5) -> nearest pixel (19, 32).
    # Centre crops: 1:1 is 48x48 at left 8 (columns 8..55), 16:9 is 36x64 at
    # top 6 (rows 6..41); only observer 1's point is inside either.
    assert rows["centre crop"]["1:1"]["scores"] == [pytest.approx(1 / 3)]
    assert rows["centre crop"]["16:9"]["scores"] == [pytest.approx(1 / 3)]
    # Ceiling, observer 0 left out: observer 1's blob (sigma 1.92 px, radius
    # 8) lies inside every 1:1 window (columns 24..40), so the centre one wins
    # and holds neither of observer 0's corner points; for 16:9 the windows
    # holding its rows 11..27 tie and the central (top 6) wins: again 0.
    # Observer 1 left out: the heaviest window holds one corner blob, and both
    # such windows (1:1 left 0 or 16; 16:9 top 0 or 12) hold (19, 32): 1.
    assert rows["human ceiling"]["1:1"]["scores"] == [0.5]
    assert rows["human ceiling"]["16:9"]["scores"] == [0.5]
    # The model row is best_crops on the predicted map at the image's size.
    (image,) = [ex.image for ex in _examples(data)]
    saliency = predictor.predict(image)["saliency"]
    fixations = np.array([[0, 0], [47, 63], [19, 31.5]], np.float32)
    for ratio, box in crop.best_crops(saliency, ["1:1", "16:9"]).items():
        assert rows["model"][ratio]["scores"] == [crop.fixation_share(box, fixations)]
    # Paired differences: one image, so the mean of one difference.
    differences = result["differences"]
    assert differences["human ceiling - model"]["1:1"]["mean"] == pytest.approx(
        0.5 - rows["model"]["1:1"]["scores"][0]
    )
    assert differences["model - centre crop"]["16:9"]["n"] == 1
    # The files on disk.
    written = json.loads((tmp_path / "crops.json").read_text())
    assert written["rows"]["human ceiling"]["1:1"]["mean"] == 0.5
    table = (tmp_path / "crops.md").read_text()
    assert "| strategy | 1:1 | 16:9 |" in table
    assert "| centre crop | 0.333 | 0.333 |" in table
    assert "| human ceiling | 0.500 | 0.500 |" in table
    assert "mean over 1 images" in table
    assert "| model - centre crop |" in table


def _examples(data, split=None):
    from aesthal.data import pipeline

    return list(
        pipeline.iterate_eval_examples(
            data.dataset, split=split or data.test_split, data_dir=data.data_dir
        )
    )


def test_observer_fixations_split_by_observer(osie_dummy):
    from aesthal.data import prepare

    data, _ = osie_dummy
    builder = prepare.prepare_data(data)
    observers = crop_report.observer_fixations(builder, "test")
    assert list(observers) == ["1601.jpg"]
    first, second = observers["1601.jpg"]
    np.testing.assert_allclose(first, [[0, 0], [47, 63]])
    np.testing.assert_allclose(second, [[19, 31.5]])


def test_without_ceiling_and_bad_ratio(osie_dummy, tmp_path):
    data, predictor = osie_dummy
    result = crop_report.evaluate(
        predictor, data, tmp_path, ["4:5"], with_ceiling=False
    )
    assert list(result["rows"]) == ["model", "centre crop"]
    assert list(result["differences"]) == ["model - centre crop"]
    # 4:5 in 48x64: 48 x round(38.4) = 38 wide, left 13: only (19, 32) is in.
    assert result["rows"]["centre crop"]["4:5"]["scores"] == [pytest.approx(1 / 3)]
    with pytest.raises(ValueError, match="'16x9'"):
        crop_report.evaluate(predictor, data, tmp_path, ["16x9"])


class CountingPredictor(Predictor):
    """A real `Predictor` that counts the images it predicts, per file name."""

    def __init__(self, model):
        super().__init__(model)
        self.counts: collections.Counter = collections.Counter()

    def predict_pairs(self, pairs, batch_size):
        def counted():
            for key, image in pairs:
                self.counts[key.filename] += 1
                yield key, image

        yield from super().predict_pairs(counted(), batch_size)


@pytest.mark.parametrize("split", ["test", "train"])
def test_one_pass_feeds_metrics_and_crops(osie_dummy, tmp_path, split):
    from aesthal.evaluation import report

    data, predictor = osie_dummy
    counting = CountingPredictor(predictor.model)
    ratios = ["1:1", "16:9", "1:1"]  # a repeat is dropped, as evaluate does
    scorer = crop_report.CropScorer(ratios)
    maps = {}

    def add(example, prediction):
        maps[example.filename] = prediction["saliency"]
        scorer.add(example, prediction)

    metrics = report.evaluate(
        counting, data, tmp_path / "one", split=split, on_prediction=add
    )
    one_pass = scorer.finish(None, data, split, tmp_path / "one")
    # Every image of the split (test: 1601.jpg; train: 1002.jpg, 1001.jpg)
    # went through the model once, for both the metrics and the crops.
    files = {"test": ["1601.jpg"], "train": ["1002.jpg", "1001.jpg"]}[split]
    assert one_pass["files"] == files
    assert dict(counting.counts) == {name: 1 for name in files}
    assert metrics["saliency"]["metrics"]["model"]["nss"]["n"] == len(files)
    # The same crops as crop_report.evaluate's own pass, to the last digit:
    # the same images in the same batches of 8 through the same model, on
    # one CPU, give the same maps bit for bit.
    separate = crop_report.evaluate(predictor, data, tmp_path / "two", ratios, split)
    assert one_pass == separate
    assert list(one_pass["rows"]) == ["model", "centre crop", "human ceiling"]
    for name in ("crops.json", "crops.md"):
        assert (tmp_path / "one" / name).read_text() == (
            tmp_path / "two" / name
        ).read_text()
    # The model row's scores are best_crops on each map (hand-checked above):
    # the maps the pass scored. (Predicting an image again alone, a batch of
    # one, may change a map's last bits and so a near-tie between boxes.)
    examples = {ex.filename: ex for ex in _examples(data, split)}
    for index, name in enumerate(files):
        saliency = maps[name]
        for ratio, box in crop.best_crops(saliency, ["1:1", "16:9"]).items():
            assert one_pass["rows"]["model"][ratio]["scores"][index] == (
                crop.fixation_share(box, examples[name].fixations)
            )


def test_scorer_checks_ratios_before_any_prediction(osie_dummy, tmp_path):
    data, predictor = osie_dummy
    counting = CountingPredictor(predictor.model)
    with pytest.raises(ValueError, match="'16x9'"):
        crop_report.evaluate(counting, data, tmp_path, ["1:1", "16x9"])
    with pytest.raises(ValueError, match="scale"):
        crop_report.evaluate(counting, data, tmp_path, ["1:1"], scale=1.5)
    assert not counting.counts
    with pytest.raises(
        ValueError, match=r"expected a list of ratios, such as \['1:1'\]"
    ):
        crop_report.CropScorer("1:1")


def test_scorer_without_fixations_says_so(osie_dummy, tmp_path):
    data, _ = osie_dummy
    scorer = crop_report.CropScorer(["1:1"])
    with pytest.raises(ValueError, match=r"osie \[test\]: no image with fixation"):
        scorer.finish(None, data, "test", tmp_path)
    assert not (tmp_path / "crops.json").exists()


def test_aesthetics_only_model_keeps_its_metrics_then_says_so(osie_dummy, tmp_path):
    from aesthal.evaluation import report

    data, _ = osie_dummy
    config = aesthal.ModelConfig(input_size=(32, 48), tasks=("aesthetics",))
    with pytest.warns(UserWarning, match="saliency outputs are left out"):
        predictor = Predictor(aesthal.build_model(config))
    scorer = crop_report.CropScorer(["1:1"])
    report.evaluate(predictor, data, tmp_path, on_prediction=scorer.add)
    assert (tmp_path / "metrics.json").exists()
    with pytest.raises(ValueError, match="1601.jpg: the model predicts no saliency"):
        scorer.finish(None, data, "test", tmp_path)
    assert not (tmp_path / "crops.json").exists()
