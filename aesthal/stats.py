"""Statistics over images: the mean and its t-distribution confidence interval.

One implementation for every table: the evaluation drivers
(`aesthal.evaluation`), the crop scores (`aesthal.crop`) and the experiments
(`experiments/study.py`, `ablation.py`, `map_checks.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def confidence_interval(values: Sequence[float], level: float = 0.95) -> dict:
    """Mean and t-distribution confidence interval over images.

    Args:
        values: one value per image.
        level: coverage of the interval.

    Returns:
        `{"mean", "ci_low", "ci_high", "n"}`; the bounds are None for fewer
        than 2 values, the mean is None for none.

    Raises:
        ValueError: a value is NaN or infinite (it would make every field NaN).
    """
    array = np.asarray(values, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(
            f"confidence_interval: values at positions {bad[:10].tolist()} "
            "are NaN or infinite"
        )
    n = int(array.size)
    if n == 0:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    mean = float(array.mean())
    if n < 2:
        return {"mean": mean, "ci_low": None, "ci_high": None, "n": n}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * array.std(ddof=1) / np.sqrt(n))
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}
