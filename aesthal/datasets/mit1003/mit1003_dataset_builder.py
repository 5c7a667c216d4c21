"""MIT1003 (Judd et al. 2009): 1003 images, 15 observers, free viewing 3 s.

Judd, Ehinger, Durand, Torralba, "Learning to Predict Where Humans Look",
ICCV 2009.

Layout: `ALLSTIMULI/<stem>.jpeg`, `ALLFIXATIONMAPS/<stem>_fixMap.jpg` (the
published blurred map, uint8) and `ALLFIXATIONMAPS/<stem>_fixPts.jpg` (the
binary fixation-point map, white on black, saved as JPEG).

Coordinates: the points come from `_fixPts.jpg` as the pixels >= 128 (the
JPEG's ringing stays well below half range); `np.nonzero` gives `(row,
column)` pixel indices, already 0-based, so no MATLAB shift applies. They are
integer pixel centres, pooled over observers, one per fixated pixel, in
row-major order. A `_fixPts.jpg` of another size than its image is a
`map_size_mismatch` skip (points cannot be resized safely).

Sources: files placed in the manual_dir win; when the manual_dir is unset or
holds neither `ALLSTIMULI/` nor `ALLFIXATIONMAPS/`, the builder downloads
`ALLSTIMULI.zip` and `ALLFIXATIONMAPS.zip` from the authors' page (`DOWNLOADS`).
Their checksums are not in `checksums.tsv`: no copy of the zips exists offline
to hash them. TFDS hashes each zip on its first download and keeps the SHA-256
beside it (the download's `.INFO` file); building once with
`DownloadConfig(register_checksums=True)` writes them into `checksums.tsv`,
after which TFDS checks every later download against them. (`DATA.zip`, the
raw per-observer eye traces, is not needed and not downloaded.)

Split (MIT1003 has no official one): the 100 stems with the smallest SHA-256
of `<stem>.jpeg` form `test`, the other 903 `train`
(`common.hashed_test_set`); with another number of images, round(n * 100 /
1003) go to test.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow_datasets as tfds

from aesthal.datasets import common

_NUM_TEST_OF_1003 = 100
POINT_THRESHOLD = 128

_URL_ROOT = "http://people.csail.mit.edu/tjudd/WherePeopleLook/"
DOWNLOADS = {
    "stimuli": _URL_ROOT + "ALLSTIMULI.zip",
    "maps": _URL_ROOT + "ALLFIXATIONMAPS.zip",
}

_CITATION = """\
@inproceedings{judd2009learning,
  title={Learning to Predict Where Humans Look},
  author={Judd, Tilke and Ehinger, Krista and Durand, Fr{\\'e}do and
          Torralba, Antonio},
  booktitle={ICCV}, year={2009}
}
"""


def points_from_fixpts(path: str, image_hw: tuple[int, int]) -> np.ndarray:
    """Fixated pixels of a `_fixPts.jpg`: float32 `[N, 2]` `(row, col)`, 0-based.

    Raises:
        common.BadExampleError: `missing_file`, `corrupt_map`,
            `map_size_mismatch`.
    """
    binary = common.read_gray_map(path)
    if binary.shape != tuple(image_hw):
        raise common.BadExampleError(
            "map_size_mismatch",
            f"{path}: points map is {binary.shape[::-1]} (WxH), image "
            f"{tuple(image_hw)[::-1]}",
        )
    rows, cols = np.nonzero(binary >= POINT_THRESHOLD)
    return np.stack([rows, cols], axis=-1).astype(np.float32)


def test_stems(stems: list[str]) -> set[str]:
    """The fixed test split: round(n * 100 / 1003) stems by SHA-256 of the name."""
    num_test = int(round(len(stems) * _NUM_TEST_OF_1003 / 1003))
    chosen = common.hashed_test_set([s + ".jpeg" for s in stems], num_test)
    return {os.path.splitext(name)[0] for name in chosen}


class Builder(tfds.core.GeneratorBasedBuilder):
    """MIT1003: images, published uint8 maps, points from `_fixPts.jpg`.

    Splits: `train` (903), `test` (100), fixed by hash (module docstring).
    Features: `image` uint8 `[H, W, 3]`; `image/filename` (`<stem>.jpeg`);
    `has_saliency` True; `has_aesthetics` False; `fixation_map` uint8
    `[H, W, 1]`; `fixations` float32 `[N, 2]` `(row, column)`, 0-based.
    """

    # The blur of the published fixation maps is not documented precisely
    # enough to reproduce, so the evaluation derives no blurred density for
    # CC/KLD/SIM on this data set (docs/metrics.md, metric-specific maps).
    fixation_map_sigma = None
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Only needed offline: with network access and no manual_dir, the builder
downloads the files itself. Otherwise download ALLSTIMULI.zip and
ALLFIXATIONMAPS.zip from http://people.csail.mit.edu/tjudd/WherePeopleLook/
and unpack both into the manual_dir:

    <manual_dir>/ALLSTIMULI/<stem>.jpeg                  (1003 images)
    <manual_dir>/ALLFIXATIONMAPS/<stem>_fixMap.jpg       (one per image)
    <manual_dir>/ALLFIXATIONMAPS/<stem>_fixPts.jpg       (one per image)
"""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=common.saliency_features(np.uint8),
            homepage="http://people.csail.mit.edu/tjudd/WherePeopleLook/",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual_dir = common.manual_dir_holding(
            dl_manager, ["ALLSTIMULI", "ALLFIXATIONMAPS"]
        )
        if manual_dir is not None:
            common.check_manual_files(
                manual_dir,
                files=["ALLSTIMULI", "ALLFIXATIONMAPS"],
                globs=[
                    "ALLSTIMULI/*.jpeg",
                    "ALLFIXATIONMAPS/*_fixMap.jpg",
                    "ALLFIXATIONMAPS/*_fixPts.jpg",
                ],
                dataset=self.name,
                instructions=self.MANUAL_DOWNLOAD_INSTRUCTIONS,
                downloads=True,
            )
            stimuli = common.join(manual_dir, "ALLSTIMULI")
            maps = common.join(manual_dir, "ALLFIXATIONMAPS")
        else:
            extracted = common.download(
                dl_manager.download_and_extract,
                DOWNLOADS,
                dataset=self.name,
                instructions=self.MANUAL_DOWNLOAD_INSTRUCTIONS,
            )
            stimuli = common.extracted_folder(
                str(extracted["stimuli"]),
                "ALLSTIMULI",
                "*.jpeg",
                url=DOWNLOADS["stimuli"],
            )
            maps = common.extracted_folder(
                str(extracted["maps"]),
                "ALLFIXATIONMAPS",
                "*_fixMap.jpg",
                url=DOWNLOADS["maps"],
            )
        names = common.list_files(stimuli, [".jpeg"])
        stems = [os.path.splitext(n)[0] for n in names]
        test = test_stems(stems)
        splits = {
            "train": [s for s in stems if s not in test],
            "test": [s for s in stems if s in test],
        }
        self.skip_counters = {s: common.SkipCounter(self.name, s) for s in splits}
        return {
            split: self._generate_examples(
                stimuli, maps, split_stems, self.skip_counters[split]
            )
            for split, split_stems in splits.items()
        }

    def _generate_examples(
        self, stimuli: str, maps: str, stems: list[str], counter: common.SkipCounter
    ):
        def make(stem: str) -> dict:
            map_path = common.join(maps, stem + "_fixMap.jpg")
            pts_path = common.join(maps, stem + "_fixPts.jpg")
            common.require_files(map_path, pts_path)
            return common.published_map_example(
                stem + ".jpeg",
                common.join(stimuli, stem + ".jpeg"),
                map_path,
                functools.partial(points_from_fixpts, pts_path),
                counter,
            )

        yield from common.generate(
            ((s + ".jpeg", functools.partial(make, s)) for s in stems), counter
        )
