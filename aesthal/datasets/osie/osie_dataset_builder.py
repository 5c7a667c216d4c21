"""OSIE: 700 photographs with the fixations of 15 free-viewing observers.

Xu, Jiang, Wang, Kankanhalli, Zhao, "Predicting human gaze beyond pixels",
Journal of Vision 14(1):28, 2014 (MIT License).

Coordinates: `fixations.mat` stores MATLAB-style 1-based `fix_x` (column) and
`fix_y` (row). The builder converts them once, with
`aesthal.fixations.from_matlab_xy`, to float32 `[N, 2]` `(row, column)` in
0-based pixel coordinates of the stored image: MATLAB `(x=1, y=1)` is `(0, 0)`.
The points of all observers are concatenated in observer order, and
`fixations/observer` holds each point's observer (0-based subject index);
points whose nearest pixel lies outside the image (none in the real data) are
dropped.

`fixation_map` follows the upstream `computeFixationMaps.m`: pool all
observers' points into a binary map (round, clip), blur with a Gaussian of
sigma 24 px at 800x600 (scaled by sqrt(H * W / (800 * 600)) for another
size), min-max normalise, and store as uint16 PNG (round(v * 65535)).

Sources: files placed in the manual_dir win; when the manual_dir is unset or
holds no `data/` folder, the builder downloads the 701 files one by one from
the upstream repository at `UPSTREAM_COMMIT` (raw.githubusercontent.com;
GitHub's zip archives are not byte-stable, single files are). `checksums.tsv`
holds their size and SHA-256, hashed from the byte-identical copy in
`../shared/data/osie` (`python -m aesthal.datasets.osie.record_checksums`),
and TFDS checks every download against it.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow_datasets as tfds

from aesthal import fixations as fixlib
from aesthal.datasets import common

_TRAIN_RANGE = (1001, 1600)
_TEST_RANGE = (1601, 1700)

# The upstream commit the checksums were recorded at (shared/data/osie/UPSTREAM_COMMIT).
UPSTREAM_COMMIT = "4a467890fcb40a2fec04cdded552760942bac7a4"
_RAW_URL = (
    "https://raw.githubusercontent.com/NUS-VIP/predicting-human-gaze-beyond-pixels/"
    "{commit}/{path}"
)
FIXATIONS_MAT = "data/eye/fixations.mat"
STIMULI_DIR = "data/stimuli"

_CITATION = """\
@article{xu2014predicting,
  title={Predicting human gaze beyond pixels},
  author={Xu, Juan and Jiang, Ming and Wang, Shuo and Kankanhalli, Mohan S.
          and Zhao, Qi},
  journal={Journal of Vision}, volume={14}, number={1}, pages={28}, year={2014}
}
"""


def upstream_files() -> dict[str, str]:
    """`{path in the release: raw URL at UPSTREAM_COMMIT}` for its 701 files.

    The paths are those of the manual layout: `data/eye/fixations.mat` and
    `data/stimuli/1001.jpg` ... `data/stimuli/1700.jpg`.
    """
    paths = [FIXATIONS_MAT] + [
        f"{STIMULI_DIR}/{number}.jpg"
        for number in range(_TRAIN_RANGE[0], _TEST_RANGE[1] + 1)
    ]
    return {path: _RAW_URL.format(commit=UPSTREAM_COMMIT, path=path) for path in paths}


def _split_of(name: str) -> str | None:
    stem = os.path.splitext(name)[0]
    if not stem.isdigit():
        return None
    number = int(stem)
    if _TRAIN_RANGE[0] <= number <= _TRAIN_RANGE[1]:
        return "train"
    if _TEST_RANGE[0] <= number <= _TEST_RANGE[1]:
        return "test"
    return None


def _cell(value) -> list:
    """A MATLAB cell / struct array read with squeeze_me=True, as a list."""
    if isinstance(value, np.ndarray):
        return list(value.reshape(-1))
    return [value]


def load_fixations_mat(path: str) -> dict[str, object]:
    """Reads `fixations.mat` into `{image name: entry}`.

    The file holds `fixations`, a 700x1 cell of structs with `img` (file name)
    and `subjects` (a cell of structs with `fix_x`, `fix_y`, `fix_duration`).

    Raises:
        ValueError: the file is missing, cannot be read (both as
            `common.BadExampleError`, a ValueError) or has no `fixations`
            cell: a problem with the whole data set, so it fails before any
            example.
    """
    mat = common.load_mat(path)
    if "fixations" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path}: no `fixations` variable (found {keys})")
    entries: dict[str, object] = {}
    for index, entry in enumerate(_cell(mat["fixations"])):
        name = getattr(entry, "img", None)
        name = str(name) if name is not None else f"<entry {index} without img>"
        entries[name] = entry
    return entries


def entry_observers(entry: object, where: str) -> list[np.ndarray]:
    """Each observer's fixations of one entry, in the file's subject order.

    Args:
        entry: one struct of `load_fixations_mat`'s result.
        where: names the entry in error messages.

    Returns:
        One float32 `[N_k, 2]` `(row, column)` 0-based array per observer
        (`[0, 2]` for an observer without fixations).

    Raises:
        common.BadExampleError: `bad_mat_entry` when a field is missing.
    """
    subjects = getattr(entry, "subjects", None)
    if subjects is None:
        raise common.BadExampleError("bad_mat_entry", f"{where}: no `subjects`")
    observers = []
    for j, subject in enumerate(_cell(subjects)):
        if not (hasattr(subject, "fix_x") and hasattr(subject, "fix_y")):
            raise common.BadExampleError(
                "bad_mat_entry", f"{where}: subject {j} lacks fix_x/fix_y"
            )
        try:
            observers.append(fixlib.from_matlab_xy(subject.fix_x, subject.fix_y))
        except (ValueError, TypeError) as error:
            raise common.BadExampleError(
                "bad_mat_entry", f"{where}: subject {j}: {error}"
            ) from error
    return observers


def entry_points(entry: object, where: str) -> np.ndarray:
    """All observers' fixations of one entry: float32 `[N, 2]` (row, col), 0-based.

    Raises:
        common.BadExampleError: `bad_mat_entry` when a field is missing.
    """
    observers = entry_observers(entry, where)
    if not observers:
        return np.zeros((0, 2), np.float32)
    return np.concatenate(observers, axis=0)


class Builder(tfds.core.GeneratorBasedBuilder):
    """OSIE (Xu et al. 2014): images, fixation points and computed fixation maps.

    Splits: `train` = 1001.jpg-1600.jpg (600), `test` = 1601.jpg-1700.jpg (100).
    Features: `image` uint8 `[H, W, 3]`; `image/filename`; `has_saliency`
    (True) and `has_aesthetics` (False); `fixation_map` uint16 `[H, W, 1]`
    (min-max normalised to 0..65535); `fixations` float32 `[N, 2]` 0-based
    `(row, column)` (see the module docstring for the conversion);
    `fixations/observer` int32 `[N]`, the observer of each point (the index
    of its subject in `fixations.mat`, 0-based; since 1.1.0).
    """

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "1.1.0": "fixations/observer: the observer (0..14) of each fixation, "
        "for leave-one-observer-out evaluations such as aesthal.crop's human "
        "ceiling.",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Only needed offline: with network access and no manual_dir, the builder
downloads the files itself. Otherwise copy the OSIE release
(github.com/NUS-VIP/predicting-human-gaze-beyond-pixels) into the manual_dir,
keeping its layout:

    <manual_dir>/data/stimuli/1001.jpg ... 1700.jpg   (700 images, 800x600)
    <manual_dir>/data/eye/fixations.mat               (MATLAB 5 MAT-file)

e.g. tfds.load("osie", download_and_prepare_kwargs={"download_config":
tfds.download.DownloadConfig(manual_dir="../shared/data/osie")}).
"""

    @staticmethod
    def fixation_map_sigma(image_shape: tuple[int, ...]) -> float:
        """Sigma (px) of the Gaussian that blurred this image's `fixation_map`.

        `aesthal.fixations.osie_sigma`: 24 px at 800x600. The evaluation blurs
        a predicted density with it for CC/KLD/SIM (docs/metrics.md).
        """
        return fixlib.osie_sigma(image_shape)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    **common.saliency_features(np.uint16),
                    "fixations/observer": tfds.features.Tensor(
                        shape=(None,), dtype=np.int32
                    ),
                }
            ),
            homepage="https://github.com/NUS-VIP/predicting-human-gaze-beyond-pixels",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual_dir = common.manual_dir_holding(dl_manager, ["data"])
        if manual_dir is not None:
            common.check_manual_files(
                manual_dir,
                files=[FIXATIONS_MAT, STIMULI_DIR],
                globs=[f"{STIMULI_DIR}/*.jpg"],
                dataset=self.name,
                instructions=self.MANUAL_DOWNLOAD_INSTRUCTIONS,
                downloads=True,
            )
            mat_path = common.join(manual_dir, FIXATIONS_MAT)
            stimuli = common.join(manual_dir, STIMULI_DIR)
            images = {
                name: common.join(stimuli, name)
                for name in common.list_files(stimuli, [".jpg"])
            }
        else:
            paths = common.download(
                dl_manager.download,
                upstream_files(),
                dataset=self.name,
                instructions=self.MANUAL_DOWNLOAD_INSTRUCTIONS,
            )
            mat_path = str(paths.pop(FIXATIONS_MAT))
            images = {
                path.rsplit("/", 1)[-1]: str(local) for path, local in paths.items()
            }
        entries = load_fixations_mat(mat_path)
        by_split: dict[str, list[str]] = {"train": [], "test": []}
        for name in sorted(set(images) | set(entries)):
            split = _split_of(name)
            if split is not None:
                by_split[split].append(name)
        self.skip_counters = {
            split: common.SkipCounter(self.name, split) for split in by_split
        }
        return {
            split: self._generate_examples(
                images, split_names, entries, self.skip_counters[split]
            )
            for split, split_names in by_split.items()
        }

    def _generate_examples(
        self,
        images: dict[str, str],
        names: list[str],
        entries: dict[str, object],
        counter: common.SkipCounter,
    ):
        yield from common.generate(
            (
                (
                    name,
                    functools.partial(self._example, images, name, entries, counter),
                )
                for name in names
            ),
            counter,
        )

    def _example(self, images, name, entries, counter) -> dict:
        if name not in entries:
            raise common.BadExampleError("no_fixations", f"{name} has no entry")
        observers = entry_observers(entries[name], f"fixations.mat entry {name}")
        if name not in images:
            raise common.BadExampleError(
                "missing_file", f"{name} is in fixations.mat but not among the stimuli"
            )
        rgb, encoded = common.read_rgb_image(images[name])
        height, width = rgb.shape[:2]
        observers = [
            common.keep_points_in_image(p, rgb.shape, counter) for p in observers
        ]
        points = (
            np.concatenate(observers, axis=0)
            if observers
            else np.zeros((0, 2), np.float32)
        )
        observer_ids = np.repeat(
            np.arange(len(observers), dtype=np.int32), [len(p) for p in observers]
        )
        binary = fixlib.points_to_binary_map(points, (height, width))
        common.check_nonzero(binary, f"{name} (fixation points)")
        fixation_map = fixlib.blur_fixation_map(binary, fixlib.osie_sigma(rgb.shape))
        common.check_nonzero(fixation_map, f"{name} (blurred map)")
        return {
            "image": encoded,
            "image/filename": name,
            "has_saliency": True,
            "has_aesthetics": False,
            "fixation_map": common.encode_png(common.to_uint16_map(fixation_map)),
            "fixations": points,
            "fixations/observer": observer_ids,
        }
