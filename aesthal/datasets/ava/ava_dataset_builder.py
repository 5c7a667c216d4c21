"""AVA (Murray et al. 2012): ~255,000 photographs with aesthetic vote counts.

Murray, Marchesotti, Perronnin, "AVA: A large-scale database for aesthetic
visual analysis", CVPR 2012.

`AVA.txt` has one image per line, 15 whitespace-separated integers: index,
image id, the vote counts for scores 1..10, semantic tag id 1, semantic tag
id 2, challenge id. Images are `images/<image id>.jpg`. No saliency labels.

Split: if `aesthetics_image_lists/generic_test.jpgl` (the official list
shipped with AVA: one image id per line) is present, its ids are `test` and
all others `train`. Without it, a fixed hashed split: the round(n * 19930 /
255530) ids (the official list's share, ~7.8%) with the smallest SHA-256 of
the id string are `test`.

Skipped (counted, summarised in the log at the end of each split): a
malformed line (not 15 integers, or a negative count), an id seen twice,
zero votes in all bins (the target would be 0/0), a missing, corrupt or
undecodable image. A malformed line is counted in the split of its id when
the id can be read, else in `train`.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from aesthal.datasets import common

TEST_LIST = "aesthetics_image_lists/generic_test.jpgl"
_OFFICIAL_TEST, _OFFICIAL_TOTAL = 19930, 255530

_CITATION = """\
@inproceedings{murray2012ava,
  title={AVA: A large-scale database for aesthetic visual analysis},
  author={Murray, Naila and Marchesotti, Luca and Perronnin, Florent},
  booktitle={CVPR}, year={2012}
}
"""


def parse_line(line: str, where: str) -> tuple[str, np.ndarray]:
    """One `AVA.txt` line -> `(image id, votes int32 [10])`.

    Raises:
        common.BadExampleError: `malformed_line` or `zero_votes`.
    """
    fields = line.split()
    if len(fields) != 15:
        raise common.BadExampleError(
            "malformed_line", f"{where}: {len(fields)} fields, expected 15"
        )
    try:
        values = [int(f) for f in fields]
    except ValueError as error:
        raise common.BadExampleError("malformed_line", f"{where}: {error}") from error
    votes = np.asarray(values[2:12], np.int64)
    if np.any(votes < 0) or np.any(votes > np.iinfo(np.int32).max):
        raise common.BadExampleError(
            "malformed_line", f"{where}: vote counts {votes.tolist()}"
        )
    if not votes.any():
        raise common.BadExampleError("zero_votes", f"{where}: no votes at all")
    return str(values[1]), votes.astype(np.int32)


class Builder(tfds.core.GeneratorBasedBuilder):
    """AVA: images and 10-bin vote histograms (aesthetics only).

    Features: `image` uint8 `[H, W, 3]`; `image/filename` (`<id>.jpg`);
    `has_saliency` False; `has_aesthetics` True; `aesthetics_votes` int32
    `[10]`, the number of votes for scores 1..10 (sum > 0).
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Get the AVA data set (https://github.com/mtobeiyf/ava_downloader or the
authors' release) and arrange the manual_dir as:

    <manual_dir>/AVA.txt                  (15 integers per line)
    <manual_dir>/images/<image id>.jpg    (one per AVA.txt line)
    <manual_dir>/{TEST_LIST}   (optional: official test ids, one per line)
"""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(
                        shape=(None, None, 3), dtype=np.uint8, encoding_format="jpeg"
                    ),
                    "image/filename": tfds.features.Text(),
                    "has_saliency": tfds.features.Scalar(dtype=np.bool_),
                    "has_aesthetics": tfds.features.Scalar(dtype=np.bool_),
                    "aesthetics_votes": tfds.features.Tensor(
                        shape=(10,), dtype=np.int32
                    ),
                }
            ),
            homepage="https://doi.org/10.1109/CVPR.2012.6247954",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = str(dl_manager.manual_dir)
        common.check_manual_files(
            root,
            files=["AVA.txt", "images"],
            globs=["images/*.jpg"],
            dataset=self.name,
            instructions=self.MANUAL_DOWNLOAD_INSTRUCTIONS,
        )
        with tf.io.gfile.GFile(common.join(root, "AVA.txt"), "r") as f:
            lines = [(i + 1, line) for i, line in enumerate(f) if line.strip()]
        ids = [line.split()[1] for _, line in lines if len(line.split()) > 1]
        test_path = common.join(root, TEST_LIST)
        if tf.io.gfile.exists(test_path):
            with tf.io.gfile.GFile(test_path, "r") as f:
                test = {t.strip() for t in f if t.strip()}
        else:
            num_test = int(round(len(set(ids)) * _OFFICIAL_TEST / _OFFICIAL_TOTAL))
            test = common.hashed_test_set(sorted(set(ids)), num_test)
        splits: dict[str, list] = {"train": [], "test": []}
        for number, line in lines:
            fields = line.split()
            image_id = fields[1] if len(fields) > 1 else None
            splits["test" if image_id in test else "train"].append((number, line))
        self.skip_counters = {s: common.SkipCounter(self.name, s) for s in splits}
        return {
            split: self._generate_examples(root, members, self.skip_counters[split])
            for split, members in splits.items()
        }

    def _generate_examples(self, root: str, lines: list, counter):
        seen: set[str] = set()

        def make(number: int, line: str) -> tuple[str, dict]:
            image_id, votes = parse_line(line, f"AVA.txt line {number}")
            if image_id in seen:
                raise common.BadExampleError(
                    "duplicate_id", f"AVA.txt line {number}: id {image_id} again"
                )
            seen.add(image_id)
            _, encoded = common.read_rgb_image(
                common.join(root, "images", f"{image_id}.jpg")
            )
            return {
                "image": encoded,
                "image/filename": f"{image_id}.jpg",
                "has_saliency": False,
                "has_aesthetics": True,
                "aesthetics_votes": votes,
            }

        yield from common.generate(
            (
                (f"line{number}", functools.partial(make, number, line))
                for number, line in lines
            ),
            counter,
        )
