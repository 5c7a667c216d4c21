"""`aesthal.stats`: the mean and its t-interval over images."""

import numpy as np
import pytest

from aesthal.stats import confidence_interval


def test_confidence_interval_hand_worked():
    # mean 2, sd 1, t_{0.975, 2} = 4.302653: half-width 4.302653 / sqrt(3).
    summary = confidence_interval([1.0, 2.0, 3.0])
    assert summary["mean"] == 2.0
    assert summary["n"] == 3
    assert summary["ci_high"] - 2.0 == pytest.approx(4.302653 / np.sqrt(3), rel=1e-6)
    assert summary["ci_low"] == pytest.approx(4.0 - summary["ci_high"])
    assert confidence_interval([5.0])["ci_low"] is None
    assert confidence_interval([])["mean"] is None
    with pytest.raises(ValueError, match=r"positions \[1, 3\] are NaN or infinite"):
        confidence_interval([1.0, np.nan, 2.0, np.inf])
