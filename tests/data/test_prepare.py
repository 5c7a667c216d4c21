"""aesthal.data.prepare: unknown data sets and split expressions are clear errors."""

import pytest

from aesthal.config import DataConfig
from aesthal.data import prepare


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown data set 'no_such_set'"):
        prepare.prepare_data(DataConfig(dataset="no_such_set"))


def test_split_expressions_are_checked_against_the_data_set(tmp_path):
    data = DataConfig(
        dataset="synthetic_scenes/tiny", data_dir=str(tmp_path)
    )
    builder = prepare.prepare_data(data)
    prepare.check_split(builder, "train[:50%]+validation")  # valid: no error
    with pytest.raises(ValueError, match=r"names \['valid'\], but the data set has"):
        prepare.check_split(builder, "train[:10]+valid[:2]")
