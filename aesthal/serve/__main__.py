"""`python -m aesthal.serve --model=...`: see `aesthal.serve.cli`."""

from aesthal.serve import cli

if __name__ == "__main__":
    cli.run()
