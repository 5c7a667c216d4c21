r"""Serves a local web page for photos, saliency maps and crops, and its JSON API.

    python -m aesthal.serve --model=runs/osie_lite2_ft_s0/model.keras [--port=8000]

Open the printed address (http://127.0.0.1:8000/ by default) in a browser and
choose or drop photos; `POST /api/predict` answers scripts. More in
docs/usage.md ("A local web page") and `aesthal.serve.cli`.
"""

from absl import flags

from aesthal.serve import cli

if __name__ == "__main__":
    flags.adopt_module_key_flags(cli)
    cli.run()
