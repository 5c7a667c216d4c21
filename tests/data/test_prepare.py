"""aesthal.data.prepare: unknown data sets and split expressions are clear errors."""

import pathlib

import pytest

from aesthal.config import DataConfig
from aesthal.data import prepare


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown data set 'no_such_set'"):
        prepare.prepare_data(DataConfig(dataset="no_such_set"))


def test_split_expressions_are_checked_against_the_data_set(tmp_path):
    data = DataConfig(dataset="synthetic_scenes/tiny", data_dir=str(tmp_path))
    builder = prepare.prepare_data(data)
    prepare.check_split(builder, "train[:50%]+validation")  # valid: no error
    with pytest.raises(ValueError, match=r"names \['valid'\], but the data set has"):
        prepare.check_split(builder, "train[:10]+valid[:2]")


def _unwritable_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    # Root ignores modes: then an unwritable mount, if the machine has one.
    for candidate in (folder, pathlib.Path("/sys/kernel/debug")):
        try:
            (candidate / "probe").write_bytes(b"")
        except OSError:
            return candidate
        (candidate / "probe").unlink()
    pytest.skip("no unwritable folder on this machine")


def test_read_only_empty_data_dir_is_a_clear_error(tmp_path):
    # Issue 15, item 8: was a raw TFDS traceback.
    folder = _unwritable_folder(tmp_path)
    data = DataConfig(dataset="synthetic_scenes/tiny", data_dir=str(folder))
    with pytest.raises(
        prepare.DataDirError,
        match=rf"synthetic_scenes/tiny is not prepared in {folder}, and it cannot "
        r"be written there \(.+\)\. Give a writable --data_dir",
    ):
        prepare.prepare_data(data)
