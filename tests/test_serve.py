"""`aesthal.serve`: the multipart reader, the JSON API, the limits, the command.

The page itself, in a real browser, is tests/test_serve_browser.py.
"""

from __future__ import annotations

import base64
import csv
import http.client
import json
import pathlib
import socket
import struct
import sys
import threading
import time
import urllib.parse

import cv2
import keras
import numpy as np
import pytest
from conftest import fork_run

import aesthal
from aesthal import predict
from aesthal.serve import PredictionService, Server, multipart

RATIOS = ["1:1", "16:9", "9:16", "4:5"]
BOUNDARY = "----aesthalTestBoundary7MA4YWxkTrZu0gW"


# ---------------------------------------------------------------- helpers
def form_body(
    fields: dict[str, str | tuple[str, bytes]], boundary: str = BOUNDARY
) -> tuple[bytes, str]:
    """A multipart/form-data body as browsers write it, and its Content-Type.

    `fields` maps a name to a text value, or to `(file name, bytes)`.
    """
    chunks = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            filename, data = value
            head = (
                f'Content-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: application/octet-stream'
            )
        else:
            head = f'Content-Disposition: form-data; name="{name}"'
            data = value.encode("utf-8")
        chunks.append(f"--{boundary}\r\n{head}\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post(
    url: str, body: bytes, content_type: str, headers: dict | None = None
) -> tuple[int, dict]:
    """POSTs `body` to `url`; returns the status and the JSON answer."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.request(
            "POST",
            parts.path,
            body=body,
            headers={"Content-Type": content_type, **(headers or {})},
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def predict_photo(url: str, path: pathlib.Path, ratios: list[str]) -> tuple[int, dict]:
    """`POST /api/predict` of one photo file, as the page sends it."""
    body, content_type = form_body(
        {"image": (path.name, path.read_bytes()), "ratios": ",".join(ratios)}
    )
    return post(url + "api/predict", body, content_type)


def decode_map(answer: dict) -> np.ndarray:
    """The answer's saliency map: uint16 `[height, width]`."""
    data = np.frombuffer(base64.b64decode(answer["saliency_png"]), np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def make_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A BGR photo-like image: a gradient, shapes and a bright spot off-centre."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(60, 200, height, dtype=np.float32)[:, None, None]
    image = np.broadcast_to(rows * [1.0, 0.8, 0.5], (height, width, 3)).copy()
    for _ in range(6):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = [int(c) for c in rng.integers(0, 256, 3)]
        cv2.circle(image, centre, int(rng.integers(4, max(5, height // 4))), colour, -1)
    cv2.circle(
        image, (width * 4 // 5, height // 3), max(3, height // 10), (255,) * 3, -1
    )
    return np.clip(image, 0, 255).astype(np.uint8)


def tiny_model(path: pathlib.Path, tasks=aesthal.TASKS) -> pathlib.Path:
    """An untrained, seeded tiny model saved as `.keras`."""
    keras.utils.set_random_seed(0)
    config = aesthal.ModelConfig(backbone="tiny", input_size=(96, 128), tasks=tasks)
    aesthal.build_model(config).save(path)
    return path


def start(service: PredictionService) -> Server:
    server = Server(service, "127.0.0.1", port=0, log_requests=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, pathlib.Path]:
    folder = tmp_path_factory.mktemp("serve_models")
    return {
        "both": tiny_model(folder / "both.keras"),
        "saliency": tiny_model(folder / "saliency.keras", tasks=("saliency",)),
    }


MAX_UPLOAD_BYTES = 200_000
MAX_PIXELS = 300 * 400


@pytest.fixture(scope="module")
def server(models):
    service = PredictionService(
        aesthal.Predictor(models["both"]),
        name="tiny",
        max_upload_bytes=MAX_UPLOAD_BYTES,
        max_pixels=MAX_PIXELS,
    )
    server = start(service)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("serve_photos")
    assert cv2.imwrite(str(folder / "photo.jpg"), make_photo(120, 160))
    assert cv2.imwrite(str(folder / "portrait.png"), make_photo(150, 90, seed=1))
    # Zeros compress to a small file of many pixels: 160,000 > MAX_PIXELS.
    assert cv2.imwrite(str(folder / "many_pixels.png"), np.zeros((400, 400), np.uint8))
    assert (folder / "many_pixels.png").stat().st_size < 10_000
    # A PNG whose header says 12000x12000 (and whose data is cut off): refused
    # from the header, as python -m aesthal.predict refuses it, never decoded.
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 12000, 12000, 8, 0, 0, 0, 0)
    (folder / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + b"\0" * 4 + b"IDAT"
    )
    jpeg = (folder / "photo.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[:200])
    (folder / "notes.jpg").write_text("not an image, just text\n")
    (folder / "empty.jpg").write_bytes(b"")
    # Over MAX_UPLOAD_BYTES, but within the request's room for form headers.
    (folder / "large.bmp").write_bytes(
        b"BM" + np.random.default_rng(0).bytes(MAX_UPLOAD_BYTES + 1000)
    )
    return folder


# -------------------------------------------------------------- multipart
def test_multipart_keeps_binary_content_byte_for_byte():
    # CR, LF, CRLF, "--" and a near-boundary inside the content stay as sent.
    data = bytes(range(256)) * 40 + b"\r\n--" + BOUNDARY[:-1].encode() + b"\r\n\r\n"
    body, content_type = form_body({"image": ("é.jpg", data), "ratios": "1:1,16:9"})
    body = b"a preamble\r\n" + body + b"an epilogue"
    fields = multipart.parse(body, content_type)
    assert list(fields) == ["image", "ratios"]
    assert fields["image"].content == data
    assert fields["image"].filename == "é.jpg"
    assert fields["image"].content_type == "application/octet-stream"
    assert fields["ratios"].text() == "1:1,16:9"
    assert fields["ratios"].filename is None
    # A quoted boundary parameter; a repeated name keeps its first part.
    body, _ = form_body({"a": "1"}, boundary="x y")
    body = body.replace(b"--x y--", b"--x y\r\n" + body.split(b"\r\n", 1)[1])
    fields = multipart.parse(body, 'multipart/form-data; boundary="x y"')
    assert fields["a"].text() == "1"


@pytest.mark.parametrize(
    "body, content_type, message",
    [
        (b"x=1", "application/x-www-form-urlencoded", "expected a multipart"),
        (b"", "multipart/form-data", "no boundary"),
        (b"no boundary here", f"multipart/form-data; boundary={BOUNDARY}", "boundary"),
        (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=a\r\n\r\n1".encode(),
            f"multipart/form-data; boundary={BOUNDARY}",
            "cut short",
        ),
        (
            f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\n1\r\n"
            f"--{BOUNDARY}--".encode(),
            f"multipart/form-data; boundary={BOUNDARY}",
            "Content-Disposition",
        ),
        (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\n1\r\n"
            f"--{BOUNDARY}--".encode(),
            f"multipart/form-data; boundary={BOUNDARY}",
            "no name",
        ),
        (
            f"--{BOUNDARY}\r\n\r\n1\r\n--{BOUNDARY}--".encode(),
            f"multipart/form-data; boundary={BOUNDARY}",
            "no headers",
        ),
        (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=a\r\n1\r\n"
            f"--{BOUNDARY}--".encode(),
            f"multipart/form-data; boundary={BOUNDARY}",
            "no end to them",
        ),
        (
            f"--{BOUNDARY}junk\r\n".encode(),
            f"multipart/form-data; boundary={BOUNDARY}",
            "cut short",
        ),
    ],
)
def test_multipart_refuses_malformed_bodies(body, content_type, message):
    with pytest.raises(multipart.MultipartError, match=message):
        multipart.parse(body, content_type)


# -------------------------------------------------------------------- API
def test_answer_is_what_the_predict_command_writes(server, models, photos, tmp_path):
    status, answer = predict_photo(server.url, photos / "photo.jpg", RATIOS)
    assert status == 200, answer
    assert (answer["width"], answer["height"]) == (160, 120)
    assert answer["model"] == "tiny"
    assert answer["tasks"] == ["saliency", "aesthetics"]
    # `python -m aesthal.predict` on the same file with the same model.
    out = tmp_path / "out"
    predict.predict_folder(
        str(models["both"]), photos / "photo.jpg", out, crops=RATIOS, progress=False
    )
    written = cv2.imread(str(out / "photo_saliency.png"), cv2.IMREAD_UNCHANGED)
    served = decode_map(answer)
    assert served.dtype == np.uint16 and served.shape == (120, 160)
    assert served.max() == 65535
    assert np.abs(served.astype(int) - written.astype(int)).max() <= 1
    with open(out / "predictions.csv") as handle:
        row = next(csv.DictReader(handle))
    for ratio in RATIOS:
        tag = predict.crop_tag(ratio)
        box = [int(row[f"crop_{tag}_{f}"]) for f in predict.BOX_FIELDS]
        assert answer["crops"][ratio] == box, ratio
    assert answer["aesthetics_mean"] == pytest.approx(
        float(row["mean_score"]), abs=1e-3
    )
    # The crops are not simply centred: the map moved them.
    assert answer["crops"]["9:16"] != [0, 46, 120, 68]


def test_score_only_where_the_model_was_trained_on_it(models, photos):
    with pytest.warns(UserWarning, match="aesthetics outputs are left out"):
        predictor = aesthal.Predictor(models["saliency"])
    service = PredictionService(predictor)
    answer = service.predict((photos / "photo.jpg").read_bytes(), "photo.jpg", ["1:1"])
    assert "aesthetics_mean" not in answer
    assert answer["tasks"] == ["saliency"]
    assert service.info()["tasks"] == ["saliency"]
    assert answer["crops"]["1:1"][2:] == [120, 120]


def test_other_ratios_reuse_the_prediction(server, photos):
    service = server.service
    service._cache.clear()
    calls = []
    original = service.predictor.predict
    service.predictor.predict = lambda image: calls.append(1) or original(image)
    try:
        data = (photos / "portrait.png").read_bytes()
        first = service.predict(data, "portrait.png", ["1:1"])
        again = service.predict(data, "portrait.png", ["16:9", "1:1"])
    finally:
        del service.predictor.predict
    assert len(calls) == 1
    assert again["saliency_png"] == first["saliency_png"]
    assert list(again["crops"]) == ["16:9", "1:1"]
    assert again["crops"]["1:1"] == first["crops"]["1:1"]


def test_kept_maps_stay_within_their_pixel_budget(server, photos):
    # photo.jpg has 160x120 = 19,200 pixels, portrait.png 90x150 = 13,500.
    service = PredictionService(server.service.predictor, cache_pixels=30_000)
    for name in ["photo.jpg", "portrait.png", "photo.jpg"]:
        service.predict((photos / name).read_bytes(), name)
        assert len(service._cache) == 1  # two would be 32,700 pixels
    service.cache_pixels = 40_000
    service.predict((photos / "portrait.png").read_bytes(), "portrait.png")
    assert [e["width"] for e in service._cache.values()] == [160, 90]


def _photo(photos, name):
    return {"image": (name, (photos / name).read_bytes())}


@pytest.mark.parametrize(
    "case, status, message",
    [
        ("notes.jpg", 400, "notes.jpg: not a readable image"),
        ("truncated.jpg", 400, "truncated.jpg: "),
        ("empty.jpg", 400, "empty.jpg: empty file"),
        ("many_pixels.png", 413, "many_pixels.png: 400x400 pixels (0.2 megapixels)"),
        ("bomb.png", 413, "bomb.png: 12000x12000 pixels (144.0 megapixels) is over"),
        ("large.bmp", 413, "large.bmp: the file is 0.2 MiB, over this server's limit"),
        ("no image field", 400, "no 'image' field"),
        ("bad ratio", 400, "ratios: aspect ratio '16/9'"),
        ("urlencoded", 415, "expected a multipart/form-data body"),
        ("no closing boundary", 400, "cut short"),
    ],
)
def test_bad_upload_gets_a_4xx_and_one_line(server, photos, case, status, message):
    if case == "no image field":
        body, content_type = form_body({"photo": ("photo.jpg", b"...")})
    elif case == "bad ratio":
        body, content_type = form_body(
            {**_photo(photos, "photo.jpg"), "ratios": "16/9"}
        )
    elif case == "urlencoded":
        body, content_type = b"image=photo.jpg", "application/x-www-form-urlencoded"
    elif case == "no closing boundary":
        body, content_type = form_body(_photo(photos, "photo.jpg"))
        body = body[: -len(BOUNDARY) - 8]
    else:
        body, content_type = form_body(_photo(photos, case))
    got, answer = post(server.url + "api/predict", body, content_type)
    assert (got, list(answer)) == (status, ["error"]), answer
    assert message in answer["error"]
    assert "\n" not in answer["error"]
    # The server is still well after it.
    assert predict_photo(server.url, photos / "photo.jpg", ["1:1"])[0] == 200


def _raw_request(server: Server, lines: list[str], timeout: float = 10.0) -> bytes:
    """Sends request lines (headers, no body); returns what the server answers."""
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


@pytest.mark.parametrize("expect", [False, True])
def test_too_large_a_request_is_refused_before_its_body(server, expect):
    # 10 GB announced, nothing sent: the answer comes at once, from the headers.
    host = f"127.0.0.1:{server.server_address[1]}"
    lines = [
        "POST /api/predict HTTP/1.1",
        f"Host: {host}",
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
        f"Content-Length: {10**10}",
    ]
    if expect:  # as curl asks before a large body: no "100 Continue"
        lines.append("Expect: 100-continue")
    start = time.monotonic()
    answer = _raw_request(server, lines)
    assert time.monotonic() - start < 4
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in answer
    error = json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    assert "9536.7 MiB, over this server's limit of 0.2 MiB per photo" in error


def test_requests_without_a_length_or_from_another_host(server):
    host = f"127.0.0.1:{server.server_address[1]}"
    answer = _raw_request(
        server,
        [
            "POST /api/predict HTTP/1.1",
            f"Host: {host}",
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
        ],
    )
    assert answer.startswith(b"HTTP/1.1 411 ")
    # DNS rebinding: a page of another site that resolves to 127.0.0.1.
    for bad_host in ["example.com", "127.0.0.1.example.com:80", "[::1"]:
        answer = _raw_request(server, ["GET /api/info HTTP/1.1", f"Host: {bad_host}"])
        assert answer.startswith(b"HTTP/1.1 403 "), bad_host
        assert bad_host.encode() in answer
    answer = _raw_request(
        server, ["GET /api/info HTTP/1.1", f"Host: localhost:{host.split(':')[1]}"]
    )
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_page_and_its_files_come_from_the_package(server):
    def get(path):
        connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
        connection.request("GET", path)
        response = connection.getresponse()
        result = response.status, response.getheader("Content-Type"), response.read()
        connection.close()
        return result

    status, content_type, page = get("/")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    assert b'src="/static/app.js"' in page and b'href="/static/style.css"' in page
    files = {"/": page}
    for path, kind in [("/static/app.js", "javascript"), ("/static/style.css", "css")]:
        status, content_type, files[path] = get(path)
        assert status == 200 and kind in content_type
    # No CDN: nothing the page loads comes from another host.
    for path, text in files.items():
        assert b"http://" not in text and b"https://" not in text, path
        assert b'src="//' not in text and b"url(//" not in text, path
    assert get("/static/../cli.py")[0] == 404
    status, _, info = get("/api/info")
    assert json.loads(info) == {
        "model": "tiny",
        "tasks": ["saliency", "aesthetics"],
        "max_upload_bytes": MAX_UPLOAD_BYTES,
        "max_pixels": MAX_PIXELS,
    }


def test_uploads_at_once_get_the_answers_they_get_alone(server, photos, tmp_path):
    names = []
    for seed in range(4):
        names.append(tmp_path / f"p{seed}.jpg")
        cv2.imwrite(str(names[-1]), make_photo(60 + 10 * seed, 90, seed=10 + seed))
    alone = [predict_photo(server.url, name, ["1:1", "16:9"]) for name in names]
    server.service._cache.clear()
    together = [None] * len(names)

    def send(i):
        together[i] = predict_photo(server.url, names[i], ["1:1", "16:9"])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(names))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for (status_a, a), (status_b, b) in zip(alone, together, strict=True):
        assert status_a == status_b == 200
        assert (a["height"], a["crops"]) == (b["height"], b["crops"])
        assert np.abs(decode_map(a).astype(int) - decode_map(b)).max() <= 1


# ---------------------------------------------------------------- command
def _serve(*args, **kwargs):
    return fork_run([sys.executable, "-m", "aesthal.serve", *map(str, args)], **kwargs)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_command_without_a_shipped_model_or_with_a_bad_one(tmp_path):
    from aesthal import released

    if released.DEFAULT is None:  # until a shipped model is registered
        result = _serve()
        assert result.returncode == 2
        assert _error_lines(result.stderr) == [
            "error: no shipped model named None (shipped: none); pass a model "
            "file instead (--model=PATH)"
        ]
    result = _serve(f"--model={tmp_path / 'missing.keras'}")
    assert result.returncode == 2
    assert _error_lines(result.stderr) == [
        f"error: no model file or folder at {tmp_path / 'missing.keras'}"
    ]
    assert "Traceback" not in result.stderr
    result = _serve("--model=x.keras", "stray")
    assert (result.returncode, _error_lines(result.stderr)) == (
        2,
        ["error: unexpected arguments: stray"],
    )


def test_command_on_a_port_in_use_or_out_of_range(models):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve(f"--model={models['saliency']}", f"--port={port}")
    assert result.returncode == 2
    [line] = _error_lines(result.stderr)
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port} (")
    assert line.endswith("pass another --port (0 picks a free one)")
    assert "loading" not in result.stderr  # said before the model is loaded
    result = _serve(f"--model={models['saliency']}", "--port=70000")
    assert (result.returncode, _error_lines(result.stderr)) == (
        2,
        ["error: --port=70000: give a port in 0..65535"],
    )
