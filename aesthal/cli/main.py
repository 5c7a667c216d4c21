"""`aesthal <subcommand> [flags]`: the installed command (setup.py's
`console_scripts`), dispatching to one subcommand module.

Only the chosen subcommand's module is imported, so its flags are the ones
defined (and listed by `aesthal <subcommand> --help`). Exit status: that of
the subcommand (`aesthal.cli.common`); 0 for `aesthal --help`; 2 for no or
an unknown subcommand.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

#: Subcommand -> one line of what it does.
SUBCOMMANDS = {
    "train": "train a model, export it and evaluate it on the test split",
    "evaluate": "evaluate a model (or an ensemble) on a data set's test split",
    "export": "export a .keras model as a SavedModel",
    "predict": "maps, overlays, crops and scores for a folder of photos",
    "serve": "a local web page for photos, saliency maps and crops",
}


def usage() -> str:
    """`aesthal --help`: the subcommands."""
    lines = ["usage: aesthal <subcommand> [flags]", "", "subcommands:"]
    lines += [f"  {name:<9} {what}" for name, what in SUBCOMMANDS.items()]
    lines += [
        "",
        "`aesthal <subcommand> --help` lists a subcommand's flags; flags may come "
        "from files (--flagfile=experiments/configs/quickstart.flags).",
    ]
    return "\n".join(lines)


def run(argv: Sequence[str] | None = None) -> None:
    """The `aesthal` executable: runs a subcommand and exits with its status."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) > 1 and argv[1] in (
        "-h",
        "--help",
        "--helpshort",
        "--helpfull",
        "help",
    ):
        print(usage())
        sys.exit(0)
    if len(argv) < 2 or argv[1] not in SUBCOMMANDS:
        given = f"unknown subcommand {argv[1]!r}" if len(argv) > 1 else "no subcommand"
        print(
            f"error: {given}; expected one of {', '.join(SUBCOMMANDS)}", file=sys.stderr
        )
        print(usage(), file=sys.stderr)
        sys.exit(2)
    # Quiet TensorFlow's C++ start-up logs unless the user asked for them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from aesthal.cli import common

    name = argv[1]
    module = importlib.import_module(f"aesthal.cli.{name}")
    common.run(module, [f"aesthal {name}", *argv[2:]])


if __name__ == "__main__":
    run()
