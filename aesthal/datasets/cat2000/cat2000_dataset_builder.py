"""CAT2000 training set (Borji & Itti 2015): 2000 images in 20 categories.

Borji, Itti, "CAT2000: A Large Scale Fixation Dataset for Boosting Saliency
Research", CVPR 2015 workshop on the Future of Datasets.

Layout (`trainSet.zip`): `trainSet/Stimuli/<category>/<name>.jpg` (1920x1080),
`trainSet/FIXATIONMAPS/<category>/<name>.jpg` (published uint8 map) and
`trainSet/FIXATIONLOCS/<category>/<name>.mat`, which holds `fixLocs`, a
binary `[H, W]` map (1 at each fixated pixel, pooled over the 18 observers;
the MIT benchmark format).

Coordinates: `np.nonzero(fixLocs)` gives `(row, column)` pixel indices,
already 0-based: the map is a pixel grid, not MATLAB coordinates, so no shift
applies. Points are integer pixel centres, one per fixated pixel, row-major.
A `fixLocs` of another size than its image is a `map_size_mismatch` skip.

Sources: files placed in the manual_dir win; when the manual_dir is unset or
holds no `trainSet/`, the builder downloads `trainSet.zip` (`TRAIN_SET_URL`,
the MIT saliency benchmark's server). Its checksum is not in `checksums.tsv`:
no copy of the zip exists offline to hash it. TFDS hashes it on its first
download and keeps the SHA-256 beside it (the download's `.INFO` file);
building once with `DownloadConfig(register_checksums=True)` writes it into
`checksums.tsv`, after which TFDS checks every later download against it.

Split (only the training set has labels; no official split of it): in each
category, the 10% of images (rounded, 10 of 100) with the smallest SHA-256 of
`<category>/<name>.jpg` form `test`; the rest (90 per category, 1800 in all)
`train`. `image/filename` is `<category>/<name>.jpg`.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from aesthal.datasets import common

TEST_FRACTION = 0.1
TRAIN_SET_URL = "http://saliency.mit.edu/trainSet.zip"
_LAYOUT_FILES = ["trainSet/Stimuli", "trainSet/FIXATIONMAPS", "trainSet/FIXATIONLOCS"]
_LAYOUT_GLOBS = [
    "trainSet/Stimuli/*/*.jpg",
    "trainSet/FIXATIONMAPS/*/*.jpg",
    "trainSet/FIXATIONLOCS/*/*.mat",
]

_CITATION = """\
@article{borji2015cat2000,
  title={CAT2000: A Large Scale Fixation Dataset for Boosting Saliency Research},
  author={Borji, Ali and Itti, Laurent},
  journal={CVPR 2015 workshop on Future of Datasets}, year={2015}
}
"""


def points_from_fixlocs(path: str, image_hw: tuple[int, int]) -> np.ndarray:
    """Fixated pixels of a `FIXATIONLOCS` `.mat`: float32 `[N, 2]` 0-based.

    Raises:
        common.BadExampleError: `missing_file`, `bad_mat`, `bad_mat_entry`,
            `map_size_mismatch`.
    """
    mat = common.load_mat(path)
    if "fixLocs" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise common.BadExampleError(
            "bad_mat_entry", f"{path}: no `fixLocs` (found {keys})"
        )
    locs = np.asarray(mat["fixLocs"])
    if locs.shape != tuple(image_hw):
        raise common.BadExampleError(
            "map_size_mismatch",
            f"{path}: fixLocs is {locs.shape}, image is {tuple(image_hw)} (HxW)",
        )
    rows, cols = np.nonzero(locs)
    return np.stack([rows, cols], axis=-1).astype(np.float32)


def split_names(names: list[str]) -> dict[str, list[str]]:
    """Per category, round(10%) by SHA-256 to `test`, the rest to `train`.

    Args:
        names: `<category>/<name>.jpg` relative names.
    """
    by_category: dict[str, list[str]] = {}
    for name in names:
        by_category.setdefault(name.split("/", 1)[0], []).append(name)
    test: set[str] = set()
    for members in by_category.values():
        test |= common.hashed_test_set(
            members, int(round(len(members) * TEST_FRACTION))
        )
    return {
        "train": [n for n in names if n not in test],
        "test": [n for n in names if n in test],
    }


class Builder(tfds.core.GeneratorBasedBuilder):
    """CAT2000 train set: images, published uint8 maps, points from `fixLocs`.

    Splits: `train` (1800), `test` (200), fixed by hash within each category.
    Features: `image` uint8 `[H, W, 3]`; `image/filename`
    (`<category>/<name>.jpg`); `has_saliency` True; `has_aesthetics` False;
    `fixation_map` uint8 `[H, W, 1]`; `fixations` float32 `[N, 2]` 0-based.
    """

    # The blur of the published fixation maps is not documented precisely
    # enough to reproduce, so the evaluation derives no blurred density for
    # CC/KLD/SIM on this data set (docs/metrics.md, metric-specific maps).
    fixation_map_sigma = None
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Only needed offline: with network access and no manual_dir, the builder
downloads the files itself. Otherwise download trainSet.zip
(http://saliency.mit.edu/trainSet.zip, linked from
http://saliency.mit.edu/results_cat2000.html) and unpack it into the
manual_dir:

    <manual_dir>/trainSet/Stimuli/<category>/<name>.jpg        (2000 images)
    <manual_dir>/trainSet/FIXATIONMAPS/<category>/<name>.jpg   (one per image)
    <manual_dir>/trainSet/FIXATIONLOCS/<category>/<name>.mat   (one per image)
"""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=common.saliency_features(np.uint8),
            homepage="http://saliency.mit.edu/results_cat2000.html",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual_dir = common.manual_dir_holding(dl_manager, ["trainSet"])
        if manual_dir is not None:
            common.check_manual_files(
                manual_dir,
                files=_LAYOUT_FILES,
                globs=_LAYOUT_GLOBS,
                dataset=self.name,
                instructions=self.MANUAL_DOWNLOAD_INSTRUCTIONS,
                downloads=True,
            )
            root = common.join(manual_dir, "trainSet")
        else:
            root = common.extracted_folder(
                str(
                    common.download(
                        dl_manager.download_and_extract,
                        TRAIN_SET_URL,
                        dataset=self.name,
                        instructions=self.MANUAL_DOWNLOAD_INSTRUCTIONS,
                    )
                ),
                "trainSet",
                "Stimuli/*/*.jpg",
                url=TRAIN_SET_URL,
            )
        stimuli = common.join(root, "Stimuli")
        names = []
        for category in sorted(tf.io.gfile.listdir(stimuli)):
            category = category.rstrip("/")
            for name in common.list_files(common.join(stimuli, category), [".jpg"]):
                names.append(f"{category}/{name}")
        splits = split_names(names)
        self.skip_counters = {s: common.SkipCounter(self.name, s) for s in splits}
        return {
            split: self._generate_examples(root, members, self.skip_counters[split])
            for split, members in splits.items()
        }

    def _generate_examples(self, root: str, names: list[str], counter):
        def make(name: str) -> dict:
            stem = os.path.splitext(name)[0]
            map_path = common.join(root, "FIXATIONMAPS", name)
            mat_path = common.join(root, "FIXATIONLOCS", stem + ".mat")
            common.require_files(map_path, mat_path)
            return common.published_map_example(
                name,
                common.join(root, "Stimuli", name),
                map_path,
                functools.partial(points_from_fixlocs, mat_path),
                counter,
            )

        yield from common.generate(
            ((n, functools.partial(make, n)) for n in names), counter
        )
