r"""`python -m aesthal.serve`: a local web page for photos, saliency maps and crops.

    python -m aesthal.serve --model=runs/osie_lite2_ft_s0/model.keras
    # then open http://127.0.0.1:8000/ (printed at start)

`--model` takes what `python -m aesthal.predict --model` takes (a `.keras`
file, a SavedModel folder, or several, comma-separated, averaged), with
`--mirror` and `--scales`; without `--model` the model shipped with aesthal.
The server listens on 127.0.0.1 (this machine only) unless `--host` says
otherwise; `--port=0` picks a free port. Ctrl-C stops it.

Exit status: 0 after Ctrl-C; 2 for a usage or start-up error, as one line on
stderr (no model, a model that cannot be loaded, a port in use, a flag out of
range); 1 for a flag absl cannot parse (`--port=abc`), with absl's message.
The flags are defined here only; the library (`aesthal.serve.server`,
`aesthal.serve.service`) never reads them.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import warnings
from collections.abc import Sequence

from absl import app, flags

from aesthal.inference import make_predictor, parse_scales
from aesthal.serve import service as service_lib
from aesthal.serve.server import Server

_MODEL = flags.DEFINE_string(
    "model",
    None,
    "A .keras file or SavedModel folder; several, comma-separated, average their "
    "maps (aesthal.inference.Ensemble). Default: the model shipped with aesthal.",
)
_MIRROR = flags.DEFINE_bool(
    "mirror", False, "Also average each model's map of the mirror image."
)
_SCALES = flags.DEFINE_string(
    "scales",
    "1",
    "Factors of each model's input size to also run it at, comma-separated, "
    "their maps averaged (e.g. 1,1.25,1.5); other than 1 needs .keras files.",
)
_HOST = flags.DEFINE_string(
    "host",
    "127.0.0.1",
    "The address to listen on: 127.0.0.1 is this machine only; 0.0.0.0 lets "
    "anyone on the network upload photos to it.",
)
_PORT = flags.DEFINE_integer("port", 8000, "The port; 0 picks a free one.")
_MAX_UPLOAD_MB = flags.DEFINE_float(
    "max_upload_mb",
    service_lib.DEFAULT_MAX_UPLOAD_BYTES / 2**20,
    "The largest photo file taken, in MiB (larger uploads get a 413).",
)
_MAX_PIXELS = flags.DEFINE_integer(
    "max_pixels",
    service_lib.DEFAULT_MAX_PIXELS,
    "The most pixels (width x height) a photo may have, read from its header "
    "before decoding (more get a 413); the limit of python -m aesthal.predict.",
)


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """What the flags ask for, checked.

    Attributes:
        model: model path(s) as `--model` gives them (comma-separated); ""
            for the shipped model (`aesthal.released`).
        mirror: average in each model's map of the mirror image.
        scales: factors of each model's input size to run it at.
        host: the address to listen on.
        port: the port (0: a free one).
        max_upload_bytes: the largest photo file taken.
        max_pixels: the most pixels a photo may have.
    """

    model: str
    mirror: bool
    scales: tuple[float, ...]
    host: str
    port: int
    max_upload_bytes: int
    max_pixels: int


def _config() -> ServeConfig:
    """The flags as a `ServeConfig`.

    Raises:
        ValueError: a flag out of range.
    """
    if not 0 <= _PORT.value <= 65535:
        raise ValueError(f"--port={_PORT.value}: give a port in 0..65535")
    if not _MAX_UPLOAD_MB.value > 0 or _MAX_PIXELS.value < 1:
        raise ValueError("--max_upload_mb and --max_pixels must be positive")
    try:
        scales = parse_scales(_SCALES.value)
    except ValueError as error:
        raise ValueError(f"--scales: {error}") from None
    return ServeConfig(
        model=_MODEL.value or "",
        mirror=_MIRROR.value,
        scales=scales,
        host=_HOST.value,
        port=_PORT.value,
        max_upload_bytes=max(1, round(_MAX_UPLOAD_MB.value * 2**20)),
        max_pixels=_MAX_PIXELS.value,
    )


def main(argv: Sequence[str]) -> int:
    """Serves the page until Ctrl-C; returns the exit status (see the module)."""
    if len(argv) > 1:
        print(f"error: unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        config = _config()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        # A port in use is said now, not after loading the model (minutes
        # for a large ensemble); the server binds it again below.
        _probe(config.host, config.port)
    except OSError as error:
        print(_listen_error(config, error), file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            predictor, name = _predictor(config)
        service = service_lib.PredictionService(
            predictor,
            name=name,
            max_upload_bytes=config.max_upload_bytes,
            max_pixels=config.max_pixels,
        )
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for warning in caught:
        print(f"note: {warning.message}", file=sys.stderr)
    try:
        server = Server(service, config.host, config.port)
    except OSError as error:
        print(_listen_error(config, error), file=sys.stderr)
        return 2
    if not server.loopback_only:
        print(
            f"note: listening on {config.host}: anyone who can reach this machine "
            "can upload photos to it",
            file=sys.stderr,
        )
    print(f"serving {service.name} at {server.url} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _predictor(config: ServeConfig):
    """`(predictor, its name)`: `--model`'s, or the shipped model's (said
    once on stderr).

    Raises:
        OSError, ValueError: the model cannot be loaded, or there is no
            shipped model (`aesthal.released.ReleaseError`).
    """
    if config.model:
        print(f"loading {config.model} ...", file=sys.stderr, flush=True)
        predictor = make_predictor(
            config.model, mirror=config.mirror, scales=config.scales
        )
        return predictor, config.model
    from aesthal import released
    from aesthal.inference import Ensemble

    predictor = released.predictor()
    print(
        f"using the shipped model {released.DEFAULT} (docs/model_card.md)",
        file=sys.stderr,
    )
    if config.mirror or config.scales != (1.0,):
        predictor = Ensemble([predictor], mirror=config.mirror, scales=config.scales)
    return predictor, released.DEFAULT


def _probe(host: str, port: int) -> None:
    """Binds `host:port` and lets it go, as the server will bind it.

    Raises:
        OSError: the port is in use, or the address is not this machine's.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def _listen_error(config: ServeConfig, error: OSError) -> str:
    return (
        f"error: cannot listen on {config.host}:{config.port} "
        f"({error.strerror or error}): pass another --port (0 picks a free one)"
    )


def run() -> None:
    """`main` under absl (flag parsing, `--help`)."""
    app.run(main)
