"""The config dataclasses' flags, generated from their fields.

Every field of `DataConfig`, `TrainConfig`, `ModelConfig` and its parts is
declared with `aesthal.config.fields.setting(...)`, which holds the flag's
name (the field's flat name), its help line and, for a string field, its
choices. This module defines one absl flag per field from that metadata (its
type from the field's annotation) and turns the parsed flags back into the
configs, so a new field needs its `setting(...)` and nothing else:

    holders = config_flags.define((ModelConfig, DataConfig, TrainConfig), __name__)
    ...
    config = config_flags.experiment_config(output_dir)

A field whose flags are not one flag of its type names a *composite* rule
(`setting(composite=...)`): `input_size` (`--input_height`,
`--input_width`), `side_heads` (`task:tap:weight` items), the per-group
learning rates (`--lr_shared`, `--lr_saliency`, `--lr_aesthetics`), the fixed
task weights (`--saliency_weight`, `--aesthetics_weight`: given, or with
`--loss_weighting=fixed`) and the saliency loss's terms (`--cc_weight`,
`--nss_weight`). A field of a type this module has no flag for is refused
when the flags are defined (tests/cli/test_config_flags.py checks that
every field has its flag).

Flags are defined once per process: a second `define` of the same config
(another command imported beside the first, as `experiments/run.py` does)
returns the same holders and registers them as that module's flags too (its
`--help`).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from absl import flags

from aesthal.config import (
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
)
from aesthal.config.fields import CHOICES, COMPOSITE, FLAG_DEFAULT, HELP, flat_name
from aesthal.config.parts import PARTS

FLAGS = flags.FLAGS


class FlagValueError(ValueError):
    """A flag's value cannot be read as its field's (a usage error)."""


# ---------------------------------------------------------------- defining
def define_flag(
    kind: str,
    name: str,
    default: Any,
    help: str,  # noqa: A002 - absl's name
    module: str,
    **kwargs: Any,
) -> flags.FlagHolder:
    """`flags.DEFINE_<kind>(name, default, help)`, once per process.

    Args:
        kind: "string", "integer", "float", "bool", "list" or "enum"
            (`kwargs` holds `enum_values`).
        name: the flag's name.
        default: its default.
        help: its help line.
        module: the module whose flag it is (listed by that module's
            `--help`); a flag defined already is registered for it too.

    Returns:
        The flag's holder (the first definition's when it exists already).
    """
    if module == "__main__":
        module = sys.argv[0]  # absl's name of a script's module
    if name in FLAGS:
        flag = FLAGS[name]
    else:
        define = getattr(flags, f"DEFINE_{kind}")
        if kind == "enum":
            holder = define(
                name, default, kwargs.pop("enum_values"), help, module_name=module
            )
        else:
            holder = define(name, default, help, module_name=module, **kwargs)
        flag = FLAGS[holder.name]
    FLAGS.register_key_flag_for_module(module, flag)
    return flags.FlagHolder(FLAGS, flag)


def _strings(value: Any) -> list[str] | None:
    return None if value is None else [str(v) for v in value]


def _field_flag(field: dataclasses.Field, module: str) -> flags.FlagHolder:
    """The one flag of a (non-composite) field, of its annotation's type."""
    name = flat_name(field)
    if HELP not in field.metadata:
        raise TypeError(
            f"{field.name}: a config field without its flag; declare it with "
            "aesthal.config.fields.setting(default, help=...)."
        )
    help_ = field.metadata[HELP]
    default = field.metadata.get(FLAG_DEFAULT, field.default)
    kind = str(field.type).replace(" | None", "")
    if CHOICES in field.metadata:
        return define_flag(
            "enum",
            name,
            default,
            help_,
            module,
            enum_values=list(field.metadata[CHOICES]),
        )
    simple = {"str": "string", "int": "integer", "float": "float", "bool": "bool"}
    if kind in simple:
        return define_flag(simple[kind], name, default, help_, module)
    if kind in ("tuple[str, ...]", "tuple[int, ...]", "tuple[int, int]"):
        return define_flag("list", name, _strings(default), help_, module)
    raise TypeError(
        f"{field.name}: aesthal.cli.config_flags has no flag for a field of type "
        f"{field.type}; give its setting(...) a composite rule or add the type."
    )


#: Composite rules: the flags that set one field, `(kind, name, default, help)`.
_COMPOSITE_FLAGS: dict[str, list[tuple[str, str, Any, str]]] = {
    "size": [
        ("integer", "input_height", None, "Model input height."),
        ("integer", "input_width", None, "Model input width."),
    ],
    "side_heads": [
        (
            "list",
            "side_heads",
            [],
            "Auxiliary heads, each task:tap:weight, e.g. saliency:stage2:0.3.",
        )
    ],
    "group_learning_rates": [
        ("float", "lr_shared", None, "Learning rate of the trunk."),
        ("float", "lr_saliency", None, "Learning rate of saliency."),
        ("float", "lr_aesthetics", None, "Learning rate of aesthetics."),
    ],
    "loss_weights": [
        ("float", "saliency_weight", 1.0, "Fixed task weight."),
        ("float", "aesthetics_weight", 1.0, "Fixed task weight."),
    ],
    "saliency_loss": [
        ("float", "cc_weight", 0.0, "Weight of -CC in the saliency loss."),
        ("float", "nss_weight", 0.0, "Weight of -NSS in the saliency loss."),
    ],
}


def config_fields(config_class: type) -> list[tuple[type, dataclasses.Field]]:
    """`(owner class, field)` for every flag-bearing field of `config_class`
    (a `ModelConfig`'s parts' fields first, then its own)."""
    out = []
    if config_class is ModelConfig:
        for part in PARTS.values():
            out += [(part, f) for f in dataclasses.fields(part)]
    for field in dataclasses.fields(config_class):
        if field.type in {cls.__name__ for cls in PARTS.values()}:
            continue  # a part: its fields above
        out.append((config_class, field))
    return out


def define(config_classes: Iterable[type], module: str) -> dict[str, flags.FlagHolder]:
    """Defines the flags of every field of `config_classes`.

    Args:
        config_classes: among `ModelConfig`, `DataConfig`, `TrainConfig`.
        module: the defining command's module name (its `--help` lists them).

    Returns:
        `{flag name: holder}`.

    Raises:
        TypeError: a field of a type with no flag and no composite rule.
    """
    holders = {}
    for config_class in config_classes:
        for _, field in config_fields(config_class):
            rule = field.metadata.get(COMPOSITE)
            if rule is None:
                holder = _field_flag(field, module)
                holders[holder.name] = holder
                continue
            for kind, name, default, help_ in _COMPOSITE_FLAGS[rule]:
                if rule == "size":
                    index = 0 if name == "input_height" else 1
                    default = field.metadata[FLAG_DEFAULT][index]
                holders[name] = define_flag(kind, name, default, help_, module)
    return holders


# ----------------------------------------------------------------- reading
def _value(field: dataclasses.Field) -> Any:
    """The parsed flag of a non-composite field, as the field's type."""
    name = flat_name(field)
    value = FLAGS[name].value
    kind = str(field.type)
    optional = kind.endswith(" | None")
    kind = kind.replace(" | None", "")
    if kind == "str" and optional and value == "":
        return None  # --validation_split='' for none
    if kind.startswith("tuple["):
        if not value:
            return None if optional else ()
        if "int" in kind:
            try:
                return tuple(int(v) for v in value)
            except ValueError:
                raise FlagValueError(
                    f"--{name}={','.join(value)}: expected integers."
                ) from None
        return tuple(value)
    return value


def _composite(rule: str) -> Any:
    value = {name: FLAGS[name].value for _, name, _, _ in _COMPOSITE_FLAGS[rule]}
    if rule == "size":
        return (value["input_height"], value["input_width"])
    if rule == "side_heads":
        heads = []
        for spec in value["side_heads"]:
            parts = spec.split(":")
            if len(parts) != 3:
                raise FlagValueError(f"--side_heads: {spec!r} is not task:tap:weight.")
            try:
                heads.append((parts[0], parts[1], float(parts[2])))
            except ValueError as error:
                raise FlagValueError(f"--side_heads: {spec!r}: {error}") from None
        return tuple(heads)
    if rule == "group_learning_rates":
        return {
            name.removeprefix("lr_"): rate
            for name, rate in value.items()
            if rate is not None
        }
    if rule == "loss_weights":
        # Given, or the default weights of fixed weighting (another weighting
        # sets the weights itself: a given one contradicts it).
        fixed = FLAGS["loss_weighting"].value == "fixed"
        return {
            name.removesuffix("_weight"): weight
            for name, weight in value.items()
            if fixed or FLAGS[name].present
        }
    if rule == "saliency_loss":
        return {"kld_weight": 1.0, **value}
    raise KeyError(rule)


def config_kwargs(config_class: type) -> dict[str, Any]:
    """The parsed flags as `config_class`'s keywords (a `ModelConfig`'s
    parts' fields by their flat names).

    Raises:
        FlagValueError: a flag's value cannot be read as its field's.
    """
    kwargs = {}
    for _, field in config_fields(config_class):
        name = field.name if config_class is not ModelConfig else flat_name(field)
        rule = field.metadata.get(COMPOSITE)
        kwargs[name] = _value(field) if rule is None else _composite(rule)
    return kwargs


def model_config() -> ModelConfig:
    """The parsed flags as a `ModelConfig`.

    Raises:
        ValueError: a flag's value or a combination the config refuses.
    """
    return ModelConfig(**config_kwargs(ModelConfig))


def data_config() -> DataConfig:
    """The parsed flags as a `DataConfig` (`ValueError` as `model_config`)."""
    return DataConfig(**config_kwargs(DataConfig))


def train_config() -> TrainConfig:
    """The parsed flags as a `TrainConfig` (`ValueError` as `model_config`)."""
    return TrainConfig(**config_kwargs(TrainConfig))


def experiment_config(output_dir: str) -> ExperimentConfig:
    """The parsed flags as the `ExperimentConfig` of a run in `output_dir`.

    Raises:
        ValueError: a flag's value or a combination a config refuses.
    """
    return ExperimentConfig(
        output_dir=output_dir,
        model=model_config(),
        data=data_config(),
        train=train_config(),
    )


def flag_names(config_classes: Sequence[type]) -> set[str]:
    """Every flag the fields of `config_classes` are set by."""
    names = set()
    for config_class in config_classes:
        for _, field in config_fields(config_class):
            rule = field.metadata.get(COMPOSITE)
            if rule is None:
                names.add(flat_name(field))
            else:
                names |= {name for _, name, _, _ in _COMPOSITE_FLAGS[rule]}
    return names
