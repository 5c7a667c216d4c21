r"""A local web page for photos, saliency maps and crops, and its JSON API.

    aesthal serve [--model=runs/osie_lite2_ft_s0/model.keras] [--port=8000]

`python -m aesthal.serve` (`aesthal.serve.cli`): the same flags; without
`--model`, the model shipped with aesthal (`aesthal.released`), named once
on stderr. Exit status: 0 after Ctrl-C; 2 a usage or start-up error in one
line (no model, a model that cannot be loaded, a port in use, a bad flag).
"""

from __future__ import annotations

from absl import flags

from aesthal.serve import cli as serve_cli

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(serve_cli)


def main(argv: list[str]) -> int:
    """`aesthal serve`: `aesthal.serve.cli.main`."""
    return serve_cli.main(argv)
