"""What every `aesthal` subcommand shares: flag parsing, `--help`, exit codes.

Exit status, for every subcommand (and the entry scripts built on them):
0 done; 1 the work failed (a run error, said in one line: a run folder in
use, a backup that cannot be read, ...; `predict`: no image could be read);
2 a usage error, in one line on stderr: a bad or missing flag, a flag of
another subcommand, a stray argument, a model that cannot be loaded.
`--help` (or `-h`, `--helpshort`) prints the subcommand's description and
its flags and exits 0; `--helpfull` adds absl's own flags.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Sequence

from absl import app, flags

FLAGS = flags.FLAGS
#: Exit status of a usage error (as argparse's).
USAGE = 2
_HELP = {"--help", "-h", "-?", "--helpshort", "-help"}
_HELP_FULL = {"--helpfull", "-helpfull"}


class UsageError(Exception):
    """A bad flag or combination of flags: one line, exit status 2."""


def usage_error(message: str, prog: str) -> int:
    """Prints a usage error as one line (and where the help is); returns 2."""
    print(
        f"error: {' '.join(str(message).split())} ({prog} --help lists the flags)",
        file=sys.stderr,
    )
    return USAGE


def _own_flags(module: types.ModuleType) -> set[str]:
    """The flags `module` defined or declared as its own (its key flags),
    those it accepts from a flagfile (`ACCEPTED_FLAGS`) and absl's (logging
    verbosity, `--flagfile`)."""
    names = {flag.name for flag in FLAGS.get_key_flags_for_module(module.__name__)}
    names |= set(getattr(module, "ACCEPTED_FLAGS", ()))
    for owner, owned in FLAGS.flags_by_module_dict().items():
        if owner.startswith("absl."):
            names |= {flag.name for flag in owned}
    return names | {"flagfile", "undefok"}


def help_text(module: types.ModuleType, prog: str, full: bool = False) -> str:
    """The subcommand's description (its module's docstring) and flags."""
    text = f"{prog}: {(module.__doc__ or '').strip()}\n\nflags:\n"
    text += FLAGS.module_help(module.__name__)
    if full:
        text += "\n\nall flags:\n" + FLAGS.get_help()
    return text


def parse(argv: Sequence[str], module: types.ModuleType) -> list[str]:
    """Parses `argv` (`[prog, flags...]`) into absl's `FLAGS` for the
    subcommand of `module`.

    Exits: 0 after `--help` (printed on stdout); 2 after a flag absl cannot
    parse or one that is not this subcommand's.

    Returns:
        The arguments left (`[prog, ...]`).
    """
    prog = argv[0]
    args = list(argv[1:])
    before = args[: args.index("--")] if "--" in args else args
    if any(a in _HELP or a in _HELP_FULL for a in before):
        print(help_text(module, prog, full=any(a in _HELP_FULL for a in before)))
        sys.exit(0)
    try:
        rest = FLAGS([prog, *args])
    except flags.Error as error:
        sys.exit(usage_error(str(error), prog))
    own = _own_flags(module)
    foreign = sorted(name for name in FLAGS if FLAGS[name].present and name not in own)
    if foreign:
        sys.exit(
            usage_error(
                f"--{foreign[0]} is not a flag of {prog}",
                prog,
            )
        )
    return rest


def run(module: types.ModuleType, argv: Sequence[str]) -> None:
    """Runs `module.main(argv)` under absl (logging set up as `app.run`
    does) with this module's parsing; exits with its status."""
    app.run(module.main, argv=list(argv), flags_parser=lambda a: parse(a, module))


def quiet_logging() -> None:
    """absl logging at WARNING unless `--verbosity` was given (TFDS logs
    every file at INFO)."""
    from absl import logging

    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def stray_arguments(argv: Sequence[str]) -> str | None:
    """The usage error for arguments that are not flags, or None."""
    if len(argv) > 1:
        return f"unexpected arguments: {' '.join(argv[1:])}"
    return None


def one_line(error: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(error).split())


def guarded(main: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
    """`main` with a usage error (`UsageError`) printed in one line, status 2."""

    def wrapped(argv: list[str]) -> int:
        try:
            return main(argv)
        except UsageError as error:
            return usage_error(str(error), argv[0])

    wrapped.__doc__ = main.__doc__
    return wrapped
