"""SALICON (2017 release): 20,000 MS-COCO images with mouse-tracking "fixations".

Jiang, Huang, Duan, Zhao, "SALICON: Saliency in Context", CVPR 2015.

Layout (the LSUN 2017 release): `images/{train,val,test}/*.jpg` (640x480),
`maps/{train,val}/*.png` (published uint8 fixation maps, same stem) and
`fixations/{train,val}/*.mat` (same stem).

Each `.mat` holds `image` (the stem), `resolution` (`[height, width]`) and
`gaze`, a struct array with one entry per observer, each with `location`
(raw mouse samples), `timestamp` and `fixations` (`[M, 2]` of `(x, y)`,
MATLAB 1-based, x = column; pysaliency also subtracts 1). The builder pools
`fixations` of all observers in observer order and converts them once with
`aesthal.fixations.from_matlab_xy` to float32 `[N, 2]` `(row, column)`,
0-based pixels of the stored image: MATLAB `(x=1, y=1)` is `(0, 0)`. If
`resolution` differs from the stored image, points are rescaled to it
(pixel-centre aligned). Points whose nearest pixel is outside the image are
dropped and counted.

Splits: `train` (10,000), `validation` (5,000; SALICON's `val`), `test`
(5,000; no labels: `has_saliency` False, all-zero map, no fixations).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow_datasets as tfds

from aesthal import fixations as fixlib
from aesthal.datasets import common

_SPLITS = {"train": "train", "validation": "val", "test": "test"}

_CITATION = """\
@inproceedings{jiang2015salicon,
  title={SALICON: Saliency in Context},
  author={Jiang, Ming and Huang, Shengsheng and Duan, Juanyong and Zhao, Qi},
  booktitle={CVPR}, year={2015}
}
"""


def mat_points(mat_path: str, image_hw: tuple[int, int]) -> np.ndarray:
    """All observers' fixations of one SALICON `.mat`, 0-based `(row, col)`.

    Args:
        mat_path: the image's `.mat`.
        image_hw: `(H, W)` of the stored image.

    Returns:
        float32 `[N, 2]`.

    Raises:
        common.BadExampleError: `missing_file`, `bad_mat`, `bad_mat_entry`.
    """
    mat = common.load_mat(mat_path)
    if "gaze" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise common.BadExampleError(
            "bad_mat_entry", f"{mat_path}: no `gaze` (found {keys})"
        )
    observers = np.asarray(mat["gaze"], dtype=object).reshape(-1)
    points = []
    for j, observer in enumerate(observers):
        fixations = getattr(observer, "fixations", None)
        if fixations is None:
            raise common.BadExampleError(
                "bad_mat_entry", f"{mat_path}: gaze({j + 1}) has no `fixations`"
            )
        xy = np.asarray(fixations, np.float64)
        if xy.size % 2:
            raise common.BadExampleError(
                "bad_mat_entry", f"{mat_path}: gaze({j + 1}).fixations is {xy.shape}"
            )
        xy = xy.reshape(-1, 2)
        points.append(fixlib.from_matlab_xy(xy[:, 0], xy[:, 1]))
    points = np.concatenate(points) if points else np.zeros((0, 2), np.float32)
    resolution = np.asarray(mat.get("resolution", image_hw), np.float64).reshape(-1)
    if resolution.size == 2 and tuple(resolution) != tuple(image_hw):
        scale = np.asarray(image_hw, np.float64) / resolution
        points = ((points + 0.5) * scale - 0.5).astype(np.float32)
    return points


class Builder(tfds.core.GeneratorBasedBuilder):
    """SALICON 2017: images, published uint8 maps, 0-based fixation points.

    Features: `image` uint8 `[H, W, 3]`; `image/filename` (e.g.
    `COCO_train2014_000000000009.jpg`); `has_saliency` (False on `test`);
    `has_aesthetics` (False); `fixation_map` uint8 `[H, W, 1]`; `fixations`
    float32 `[N, 2]` `(row, column)`, 0-based.
    """

    # The blur of the published fixation maps is not documented precisely
    # enough to reproduce, so the evaluation derives no blurred density for
    # CC/KLD/SIM on this data set (docs/metrics.md, metric-specific maps).
    fixation_map_sigma = None
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release (SALICON 2017 fixations)."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download the SALICON 2017 (LSUN) release from http://salicon.net/challenge-2017/
and unpack it into the manual_dir:

    <manual_dir>/images/train/COCO_train2014_*.jpg   (10,000)
    <manual_dir>/images/val/COCO_val2014_*.jpg       (5,000)
    <manual_dir>/images/test/COCO_test2014_*.jpg     (5,000)
    <manual_dir>/maps/train/<stem>.png               (one per train image)
    <manual_dir>/maps/val/<stem>.png                 (one per val image)
    <manual_dir>/fixations/train/<stem>.mat          (one per train image)
    <manual_dir>/fixations/val/<stem>.mat            (one per val image)
"""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=common.saliency_features(np.uint8),
            homepage="http://salicon.net/",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = str(dl_manager.manual_dir)
        common.check_manual_files(
            root,
            files=[
                "images/train",
                "images/val",
                "images/test",
                "maps/train",
                "maps/val",
                "fixations/train",
                "fixations/val",
            ],
            globs=[
                "images/train/*.jpg",
                "images/val/*.jpg",
                "images/test/*.jpg",
                "maps/train/*.png",
                "maps/val/*.png",
                "fixations/train/*.mat",
                "fixations/val/*.mat",
            ],
            dataset=self.name,
            instructions=self.MANUAL_DOWNLOAD_INSTRUCTIONS,
        )
        self.skip_counters = {
            split: common.SkipCounter(self.name, split) for split in _SPLITS
        }
        return {
            split: self._generate_examples(root, folder, self.skip_counters[split])
            for split, folder in _SPLITS.items()
        }

    def _generate_examples(self, root: str, folder: str, counter):
        images = common.join(root, "images", folder)
        labelled = folder != "test"

        def make(name: str) -> dict:
            stem = os.path.splitext(name)[0]
            map_path = common.join(root, "maps", folder, stem + ".png")
            mat_path = common.join(root, "fixations", folder, stem + ".mat")
            if labelled:
                common.require_files(map_path, mat_path)
            return common.published_map_example(
                name,
                common.join(images, name),
                map_path if labelled else None,
                functools.partial(mat_points, mat_path) if labelled else None,
                counter,
            )

        names = common.list_files(images, [".jpg", ".jpeg", ".png"])
        yield from common.generate(
            ((name, functools.partial(make, name)) for name in names), counter
        )
