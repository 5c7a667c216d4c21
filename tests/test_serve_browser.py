"""`python -m aesthal.serve` in a real browser: Chromium, headless, via Selenium.

The command runs on a free port with a tiny untrained model (or the model in
$AESTHAL_SCREENSHOT_MODEL); the page gets OSIE's photo 1601 (a generated
photo where ../shared/data is absent) through its file input and a generated
PNG dropped on it. The test waits for the heat maps, then checks that the
boxes the page draws are the API's crops at the scale shown, that the heat
map's colours are the API's map, the opacity slider, the crop files offered
for download, and a ratio ticked later; it saves a screenshot (to
docs/images/serve.png with AESTHAL_WRITE_DOCS_SCREENSHOT=1).

Chromium and its driver are Debian's `chromium` and `chromium-driver`
(tools/install_test_browser.sh, run by the README's test command); where
they are missing the browser test is skipped with the reason
($AESTHAL_CHROMIUM and $AESTHAL_CHROMEDRIVER name other binaries).
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import select
import shutil
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import pytest
from conftest import REPO_ROOT, SHARED_DATA, background_popen
from test_serve import decode_map, make_photo, predict_photo, tiny_model

OSIE_PHOTO = SHARED_DATA / "osie" / "data" / "stimuli" / "1601.jpg"
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "images" / "serve.png"
# The page's ratios before any is ticked (index.html).
PAGE_RATIOS = ["1:1", "16:9", "4:5"]
# The machine has no internet: without these, Chromium stalls on lookups.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
]
START_SECONDS = 120


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[pathlib.Path]:
    """The photo chosen (OSIE 1601, or a generated JPEG) and the one dropped."""
    folder = tmp_path_factory.mktemp("browser_photos")
    if OSIE_PHOTO.exists():
        chosen = OSIE_PHOTO
    else:
        chosen = folder / "street.jpg"
        assert cv2.imwrite(str(chosen), make_photo(600, 800, seed=3))
    dropped = folder / "portrait.png"
    assert cv2.imwrite(str(dropped), make_photo(300, 200, seed=4))
    return [chosen, dropped]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> str:
    """The command serving on a free port; its page's address."""
    folder = tmp_path_factory.mktemp("served")
    model = os.environ.get("AESTHAL_SCREENSHOT_MODEL") or tiny_model(
        folder / "tiny.keras"
    )
    # AESTHAL_SCREENSHOT_MODEL=shipped: the command's default, the shipped model.
    model_flag = [] if model == "shipped" else [f"--model={model}"]
    log = open(folder / "stderr.txt", "w+")  # noqa: SIM115 (closed below)
    process = background_popen(
        [sys.executable, "-m", "aesthal.serve", *model_flag, "--port=0"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=REPO_ROOT,
    )
    deadline = time.monotonic() + START_SECONDS
    line = ""
    while not line and process.poll() is None and time.monotonic() < deadline:
        if select.select([process.stdout], [], [], 1.0)[0]:
            line = process.stdout.readline()
    if "http://" not in line:
        process.kill()
        log.seek(0)
        pytest.fail(f"the server did not start: {line!r}\n{log.read()[-3000:]}")
    yield line.split(" at ", 1)[1].split()[0]
    process.terminate()
    process.wait(timeout=30)
    log.close()


def test_command_serves_the_api(served, photos):
    with urllib.request.urlopen(served + "api/info", timeout=30) as response:
        info = json.load(response)
    assert info["max_pixels"] > 0 and "saliency" in info["tasks"]
    status, answer = predict_photo(served, photos[1], ["9:16"])
    assert status == 200, answer
    assert (answer["width"], answer["height"]) == (200, 300)
    assert answer["crops"]["9:16"][2:] == [300, 169]


# ---------------------------------------------------------------- browser
def _chromium(profile: pathlib.Path, monkeypatch):
    """A headless Chromium under Selenium, or a skip that says why."""
    chromium = (
        os.environ.get("AESTHAL_CHROMIUM")
        or shutil.which("chromium")
        or "/usr/bin/chromium"
    )
    driver_path = (
        os.environ.get("AESTHAL_CHROMEDRIVER")
        or shutil.which("chromedriver")
        or "/usr/bin/chromedriver"
    )
    for name, path in [("chromium", chromium), ("chromedriver", driver_path)]:
        if not os.access(path, os.X_OK):
            pytest.skip(
                f"no {name} at {path}: tools/install_test_browser.sh installs "
                "Debian's chromium and chromium-driver (as root, with apt-get)"
            )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed: pip install -r requirements.txt")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager: no downloads
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver_path))


def _wait(driver, script: str, what: str, timeout: float = 60.0):
    """Runs `script` until it returns something true; returns that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    state = driver.execute_script(
        "return [...document.querySelectorAll('.photo')].map("
        "c => [c.dataset.state, c.querySelector('.error').textContent])"
    )
    pytest.fail(f"the page did not show {what} in {timeout:.0f} s; cards: {state}")


_GEOMETRY = """
const card = document.querySelectorAll('.photo')[arguments[0]];
const rect = (e) => { const r = e.getBoundingClientRect();
                      return [r.top, r.left, r.height, r.width]; };
const boxes = {};
card.querySelectorAll('.crop-box').forEach((b) => {
  boxes[b.dataset.ratio] = rect(b);
});
return {picture: rect(card.querySelector('.picture')), boxes: boxes};
"""

_HEAT_PIXELS = """
const canvas = document.querySelectorAll('.photo')[arguments[0]].querySelector('.heat');
const context = canvas.getContext('2d');
return [[canvas.width, canvas.height, getComputedStyle(canvas).opacity]].concat(
  arguments[1].map(([y, x]) => Array.from(context.getImageData(x, y, 1, 1).data)));
"""

_DOWNLOADS = """
const done = arguments[arguments.length - 1];
const photo = window.aesthal.photos[arguments[0]];
const links = [...photo.card.querySelectorAll('.downloads a')].map(
  (a) => [a.textContent, a.getAttribute('download'), a.href]);
Promise.all(Object.entries(photo.crops).map(async ([ratio, crop]) => {
  const blob = await (await fetch(crop.url)).blob();
  const bitmap = await createImageBitmap(blob);
  return [ratio, bitmap.width, bitmap.height, blob.type];
})).then((crops) => done({links: links, crops: crops}));
"""

_DROP = """
const [name, type, data] = arguments;
const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
const transfer = new DataTransfer();
transfer.items.add(new File([bytes], name, {type: type}));
document.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true}));
"""


def _jet(value: int) -> np.ndarray:
    """The page's JET colour of a grey level 0..255 (app.js)."""
    x = value / 255
    return np.array(
        [255 * min(1, max(0, 1.5 - abs(4 * x - c))) for c in (3, 2, 1)], np.float64
    )


def _check_photo(driver, index: int, path: pathlib.Path, api: dict) -> None:
    """The card `index` shows `api`: boxes, heat map, score, downloads."""
    page = driver.execute_script(f"return window.aesthal.photos[{index}].answer")
    assert {k: page[k] for k in ("width", "height", "crops")} == {
        k: api[k] for k in ("width", "height", "crops")
    }
    assert page["saliency_png"] == api["saliency_png"]
    # The boxes drawn: the API's pixels at the scale the photo is shown.
    geometry = driver.execute_script(_GEOMETRY, index)
    top, left, height, width = geometry["picture"]
    assert width < api["width"] or index == 1  # the OSIE photo is shown smaller
    sy, sx = height / api["height"], width / api["width"]
    assert sx == pytest.approx(sy, rel=0.01)
    assert sorted(geometry["boxes"]) == sorted(api["crops"])
    for ratio, (b_top, b_left, b_height, b_width) in api["crops"].items():
        drawn = geometry["boxes"][ratio]
        expected = [top + b_top * sy, left + b_left * sx, b_height * sy, b_width * sx]
        np.testing.assert_allclose(drawn, expected, atol=1.0, err_msg=ratio)
    # The heat map is the API's map in JET colours, at the photo's size.
    saliency = decode_map(api)
    grey = np.round(saliency / 257.0).astype(int)
    points = [np.unravel_index(np.argmax(saliency), saliency.shape)]
    points.append(np.unravel_index(np.argmin(saliency), saliency.shape))
    points.append((saliency.shape[0] // 2, saliency.shape[1] // 3))
    points = [(int(y), int(x)) for y, x in points]
    size, *pixels = driver.execute_script(_HEAT_PIXELS, index, points)
    assert size[:2] == [api["width"], api["height"]]
    for (y, x), pixel in zip(points, pixels, strict=True):
        assert pixel[3] == 255
        np.testing.assert_allclose(pixel[:3], _jet(grey[y, x]), atol=5, err_msg=(y, x))
    # The score only where the model was trained on it.
    score = driver.execute_script(
        "const s = document.querySelectorAll('.photo')[arguments[0]]"
        ".querySelector('.score'); return s && s.textContent;",
        index,
    )
    if "aesthetics_mean" in api:
        assert score == f"aesthetics {api['aesthetics_mean']:.2f} / 10"
    else:
        assert score is None
    # Each crop is offered as a file of the box's size, in the photo's format.
    downloads = driver.execute_async_script(_DOWNLOADS, index)
    extension = "png" if path.suffix == ".png" else "jpg"
    expected_links = []
    for ratio, (_, _, b_height, b_width) in api["crops"].items():
        name = f"{path.stem}_crop_{ratio.replace(':', 'x')}.{extension}"
        expected_links.append([f"{ratio} crop · {b_width} × {b_height}", name])
    assert [link[:2] for link in downloads["links"]] == expected_links
    assert all(link[2].startswith("blob:") for link in downloads["links"])
    mime = "image/png" if extension == "png" else "image/jpeg"
    assert sorted(downloads["crops"]) == sorted(
        [r, box[3], box[2], mime] for r, box in api["crops"].items()
    )


def test_page_in_a_browser(served, photos, tmp_path, monkeypatch):
    driver = _chromium(tmp_path / "profile", monkeypatch)
    try:
        driver.get(served)
        _wait(
            driver,
            "return document.querySelector('#model').textContent"
            ".startsWith('model: ')",
            "the model's name",
        )
        # One photo chosen in the file input, one dropped on the page.
        driver.find_element("id", "files").send_keys(str(photos[0]))
        mime = "image/png"
        data = base64.b64encode(photos[1].read_bytes()).decode()
        driver.execute_script(_DROP, photos[1].name, mime, data)
        done = (
            "const cards = document.querySelectorAll('.photo');"
            "return cards.length === 2 && [...cards].every("
            "c => c.dataset.state === 'done' && c.querySelectorAll('.crop-box').length"
            " === arguments[0]);"
        )
        _wait(driver, done.replace("arguments[0]", str(len(PAGE_RATIOS))), "2 maps")
        for index, path in enumerate(photos):
            status, api = predict_photo(served, path, PAGE_RATIOS)
            assert status == 200, api
            _check_photo(driver, index, path, api)

        # The opacity slider sets the heat map's opacity.
        driver.execute_script(
            "const s = document.querySelector('#opacity'); s.value = 20;"
            "s.dispatchEvent(new Event('input'));"
        )
        assert (
            driver.execute_script(
                "return getComputedStyle(document.querySelector('.heat')).opacity"
            )
            == "0.2"
        )

        # A ratio ticked later is drawn on every photo, as the API crops it.
        driver.find_element("css selector", "#ratios input[value='9:16']").click()
        _wait(driver, done.replace("arguments[0]", str(len(PAGE_RATIOS) + 1)), "9:16")
        for index, path in enumerate(photos):
            status, api = predict_photo(served, path, ["1:1", "16:9", "9:16", "4:5"])
            _check_photo(driver, index, path, api)

        errors = [
            entry
            for entry in driver.get_log("browser")
            if entry["level"] in ("SEVERE", "WARNING")
        ]
        assert errors == []
        driver.execute_script(
            "const s = document.querySelector('#opacity'); s.value = 55;"
            "s.dispatchEvent(new Event('input'));"
        )
        write_docs = os.environ.get("AESTHAL_WRITE_DOCS_SCREENSHOT") == "1"
        screenshot = DOCS_SCREENSHOT if write_docs else tmp_path / "serve.png"
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    image = cv2.imread(str(screenshot))
    assert image.shape[1] == 1280 and image.shape[0] > 500
