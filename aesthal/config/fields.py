"""What a config field says about itself: its flag name and its help line.

Every field of the config dataclasses is declared with `setting(...)`, which
stores in the field's metadata the one line of help a command line shows and
the flag's name (the field's *flat name*: for the parts of a `ModelConfig`,
the name the field had when the config was flat, e.g. `TrunkConfig.name` is
`--backbone`). The commands (`aesthal.cli.config_flags`) define their flags
from this metadata, and `ModelConfig`'s flat keywords and the migration of
old configs (`aesthal.config.migration`) read the same flat names: a new
field needs its `setting(...)` and nothing else.

No absl here: the config package stays free of flags.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

# Metadata keys.
HELP = "help"
FLAG = "flag"
CHOICES = "choices"
FLAG_DEFAULT = "flag_default"
#: How a field's flags are made when they are not one flag of the field's
#: type (`aesthal.cli.config_flags` has one rule per name): e.g. "size" for
#: `input_size` (`--input_height`, `--input_width`).
COMPOSITE = "composite"


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,  # noqa: A002 - the flag's help, as absl names it
    flag: str | None = None,
    choices: Sequence[str] | None = None,
    flag_default: Any = dataclasses.MISSING,
    composite: str | None = None,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with its command-line description.

    Args:
        default: the field's default.
        help: one line for `--help`.
        flag: the flag's (and the flat keyword's) name; None = the field's.
        choices: the allowed values of a string field (an enum flag).
        flag_default: the flag's default where it differs from the field's
            (the commands train at 96x128 by default; a `ModelConfig` is
            240x320).
        composite: for a field set by several flags, or a flag of another
            form than the field's type, the name of its rule in
            `aesthal.cli.config_flags`.
        default_factory: as `dataclasses.field`'s.

    Returns:
        A `dataclasses.field`.
    """
    metadata = {HELP: help}
    if flag is not None:
        metadata[FLAG] = flag
    if choices is not None:
        metadata[CHOICES] = tuple(choices)
    if flag_default is not dataclasses.MISSING:
        metadata[FLAG_DEFAULT] = flag_default
    if composite is not None:
        metadata[COMPOSITE] = composite
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata=metadata
    )


def flat_name(field: dataclasses.Field) -> str:
    """The field's flag (and flat keyword) name."""
    return field.metadata.get(FLAG, field.name)


def described(cls: type, name: str) -> str:
    """How an error names a field: `Class.field (--flag)`."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    return f"{cls.__name__}.{name} (--{flat_name(field)})"
