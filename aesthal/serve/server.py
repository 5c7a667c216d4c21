"""The local web server: the page, its scripts, and the JSON API.

Routes:

    GET  /                 the page (aesthal/serve/static/index.html)
    GET  /static/<file>    its script and style sheet, from the package
    GET  /api/info         {"model", "tasks", "max_upload_bytes", "max_pixels"}
    POST /api/predict      multipart/form-data: "image" (the photo file) and
                           optional "ratios" ("1:1,16:9"); returns the JSON of
                           `PredictionService.predict`; a refused upload gets
                           a 4xx and {"error": "<one line>"}

Why the standard library. The server is a page and one endpoint for one
person on their own machine: `http.server.ThreadingHTTPServer` serves that
with no dependency, so `pip install aesthal` users who never serve install
nothing for it, and those who do need no extra either. The one piece the
standard library no longer offers, a `multipart/form-data` reader (`cgi` is
deprecated and removed in Python 3.13; `email.parser` is slow on large
files), is `aesthal.serve.multipart`: about 75 lines that cut the body at its
boundary, tested on its own and by Chromium's own uploads in
tests/test_serve_browser.py. A framework (Flask) would add a dependency and
a WSGI server for the same few routes.

Limits are checked before the body is read: the request's Content-Length
against the service's `max_upload_bytes` (a 413 without reading further),
its Content-Type (a 415); `Expect: 100-continue` is answered the same way, so
curl does not send a body that would be refused. A refused body is drained
(up to its declared length, a few seconds at most, never stored) so that the
client reads the answer instead of a reset connection.

When the server is bound to a loopback address (the default, 127.0.0.1) it
answers only requests whose Host is a loopback name, so that a web site
cannot reach it through DNS rebinding; pages served elsewhere cannot read
its answers (no CORS headers are sent).
"""

from __future__ import annotations

import http
import http.server
import importlib.resources
import ipaddress
import json
import socket
import sys
import time
import traceback
import urllib.parse
from typing import Any

from aesthal.serve import multipart
from aesthal.serve.service import PredictionService, UploadError, parse_ratios

# Room for the multipart headers and the "ratios" field beside the photo.
_FORM_OVERHEAD = 64 * 1024
# How long a refused body is drained before the connection is closed.
_DRAIN_SECONDS = 5.0

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
_SECURITY_HEADERS = {
    # Everything the page uses comes from this server (no CDN); the map and
    # crops are data: and blob: URLs it makes itself.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self' blob:; object-src 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def static_file(name: str) -> bytes:
    """A file of the page, from the package's `static/` folder."""
    return (
        importlib.resources.files("aesthal.serve").joinpath("static", name).read_bytes()
    )


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or address) is this machine only."""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Server(http.server.ThreadingHTTPServer):
    """`ThreadingHTTPServer` over a `PredictionService`.

    Args:
        service: what `POST /api/predict` runs.
        host: the address to bind; "127.0.0.1" is this machine only.
        port: the port; 0 picks a free one (see `url`).
        log_requests: write one line per request to stderr.
    """

    daemon_threads = True

    def __init__(
        self,
        service: PredictionService,
        host: str = "127.0.0.1",
        port: int = 8000,
        log_requests: bool = True,
    ):
        self.service = service
        self.log_requests = log_requests
        self.loopback_only = is_loopback(host)
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        """The page's address, e.g. `http://127.0.0.1:8000/`."""
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"


class Handler(http.server.BaseHTTPRequestHandler):
    """Answers one connection of a `Server`."""

    server: Server
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds a client may stall mid-request
    server_version = "aesthal-serve"

    # ------------------------------------------------------------- routing
    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        if not self._host_allowed():
            return
        path = urllib.parse.urlsplit(self.path).path
        if path in _STATIC:
            name, content_type = _STATIC[path]
            self._send(200, static_file(name), content_type)
        elif path == "/api/info":
            self._send_json(200, self.server.service.info())
        else:
            self._send_error(404, f"no page at {path}: open / for the page")

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_allowed():
            return
        path = urllib.parse.urlsplit(self.path).path
        if path != "/api/predict":
            self._refuse(404, f"no API at {path}: POST photos to /api/predict")
            return
        refusal = self._check_request()
        if refusal is not None:
            self._refuse(*refusal)
            return
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        if len(body) < length:
            self._send_error(400, "the upload was cut short", close=True)
            return
        try:
            status, answer = 200, self._predict(body)
        except UploadError as error:
            self._send_error(error.status, str(error))
            return
        except Exception as error:  # noqa: BLE001 (one line to the page, all to stderr)
            traceback.print_exc(file=sys.stderr)
            self._send_error(500, f"the server failed: {type(error).__name__}: {error}")
            return
        self._send_json(status, answer)

    def handle_expect_100(self) -> bool:
        """Refuses a body before the client sends it, where it asks first."""
        if urllib.parse.urlsplit(self.path).path == "/api/predict":
            refusal = self._check_request()
            if refusal is not None:
                self._send_error(*refusal, close=True)
                return False
        return super().handle_expect_100()

    # ------------------------------------------------------------ the API
    def _check_request(self) -> tuple[int, str] | None:
        """(status, reason) for a predict request refused on its headers."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return 411, "send the upload with a Content-Length (not chunked)"
        declared = self.headers.get("Content-Length")
        if declared is None:
            return 411, "send the upload with a Content-Length"
        if not declared.isdigit():
            return 400, f"Content-Length {declared!r} is not a number of bytes"
        limit = self.server.service.max_upload_bytes
        if int(declared) > limit + _FORM_OVERHEAD:
            return 413, (
                f"the upload is {int(declared) / 2**20:.1f} MiB, over this server's "
                f"limit of {limit / 2**20:.1f} MiB per photo"
            )
        try:
            multipart.boundary(self.headers.get("Content-Type"))
        except multipart.MultipartError as error:
            return 415, str(error)
        return None

    def _predict(self, body: bytes) -> dict[str, Any]:
        service = self.server.service
        try:
            fields = multipart.parse(body, self.headers.get("Content-Type"))
            ratios = fields["ratios"].text() if "ratios" in fields else ""
        except multipart.MultipartError as error:
            raise UploadError(400, str(error)) from None
        image = fields.get("image")
        if image is None:
            raise UploadError(
                400, "no 'image' field: send the photo as the form field 'image'"
            )
        if not image.content:
            raise UploadError(400, f"{image.filename or 'the upload'}: empty file")
        return service.predict(
            image.content, image.filename, ratios=parse_ratios(ratios)
        )

    # ------------------------------------------------------------ answers
    def _host_allowed(self) -> bool:
        """Whether the Host header names this machine, where that is required."""
        if not self.server.loopback_only:
            return True
        try:
            host = urllib.parse.urlsplit("//" + self.headers.get("Host", "")).hostname
        except ValueError:  # such as an unclosed "[" of an IPv6 address
            host = None
        if host is not None and is_loopback(host):
            return True
        self._refuse(
            403,
            f"this server answers only at {self.server.url} (Host "
            f"{self.headers.get('Host')!r} is not this machine)",
        )
        return False

    def _refuse(self, status: int, reason: str) -> None:
        """An error answer to a request whose body is not read: it is drained."""
        self._send_error(status, reason, close=True)
        self._drain()

    def _drain(self) -> None:
        declared = self.headers.get("Content-Length", "")
        left = int(declared) if declared.isdigit() else 0
        deadline = time.monotonic() + _DRAIN_SECONDS
        try:
            self.connection.settimeout(1.0)
            while left > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    def _send_error(self, status: int, reason: str, close: bool = False) -> None:
        self._send_json(status, {"error": " ".join(reason.split())}, close=close)

    def _send_json(self, status: int, payload: dict, close: bool = False) -> None:
        body = json.dumps(payload).encode("utf-8")
        self._send(status, body, "application/json", close=close)

    def _send(
        self, status: int, body: bytes, content_type: str, close: bool = False
    ) -> None:
        self.send_response(status, http.HTTPStatus(status).phrase)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for header, value in _SECURITY_HEADERS.items():
            self.send_header(header, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.log_requests:
            super().log_message(format, *args)
