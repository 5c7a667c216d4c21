"""The `aesthal` command: `aesthal train|evaluate|export|predict|serve`.

The top layer (docs/design.md, "Layers"): the only package besides the
entry scripts that defines absl flags. Each subcommand's flags are defined
once, in its module (`train`, `evaluate`, `export`, `predict`, `serve`); the
config dataclasses' flags are generated from their fields
(`config_flags`); `main` dispatches to the subcommand.
"""
