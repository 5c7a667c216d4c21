"""The check that the variable groups of the grouped optimizers partition the model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aesthal.config import GROUPS


def check_partition(groups: Mapping[str, list], expected: Iterable) -> None:
    """Checks that `groups` split `expected` into disjoint, complete parts.

    Args:
        groups: `{group: [variables]}` with exactly the keys of `GROUPS`.
        expected: every trainable variable that must be in some group.

    Raises:
        RuntimeError: a variable is in two groups, in none, or is not expected;
            the message names the variables.
    """
    if set(groups) != set(GROUPS):
        raise RuntimeError(f"variable groups {sorted(groups)} != {sorted(GROUPS)}")
    owner: dict[int, str] = {}
    for group in GROUPS:
        for variable in groups[group]:
            if id(variable) in owner:
                raise RuntimeError(
                    f"variable {variable.path} is in groups {owner[id(variable)]!r} "
                    f"and {group!r}."
                )
            owner[id(variable)] = group
    expected = list(expected)
    missing = [v.path for v in expected if id(v) not in owner]
    if missing:
        raise RuntimeError(f"trainable variables in no group: {missing}")
    expected_ids = {id(v) for v in expected}
    extra = [v.path for g in GROUPS for v in groups[g] if id(v) not in expected_ids]
    if extra:
        raise RuntimeError(f"grouped variables that are not trainable: {extra}")
