// The page of `python -m aesthal.serve` (aesthal/serve/server.py).
//
// Each chosen or dropped photo is sent to POST /api/predict, one at a time;
// its answer's saliency map (a 16-bit grey PNG at the photo's size) is drawn
// as a JET heat map over the photo, its crops as boxes, and each crop is cut
// from the photo here, in the browser, as a file to download. Everything the
// page knows is in `window.aesthal` (`photos[i].answer` is the API's JSON),
// for people and for tests/test_serve_browser.py to read.
"use strict";

const state = { info: null, photos: [], queue: Promise.resolve() };
window.aesthal = state;

const $ = (selector, root = document) => root.querySelector(selector);

// JET colours of 0..255, as OpenCV's COLORMAP_JET (aesthal.predict.heat_map).
const JET = new Uint8ClampedArray(256 * 3);
for (let v = 0; v < 256; v++) {
  const x = v / 255;
  const channel = (centre) => 255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * x - centre)));
  JET[3 * v] = channel(3);
  JET[3 * v + 1] = channel(2);
  JET[3 * v + 2] = channel(1);
}

async function loadInfo() {
  try {
    const response = await fetch("/api/info");
    state.info = await response.json();
    $("#model").textContent =
      `model: ${state.info.model} · trained on ${state.info.tasks.join(" and ")}`;
  } catch (error) {
    $("#model").textContent = `the server did not answer (${error.message})`;
  }
}

function chosenRatios() {
  const checked = [...document.querySelectorAll("#ratios input[type=checkbox]:checked")];
  const more = $("#more-ratios").value.split(",").map((r) => r.trim()).filter(Boolean);
  return [...new Set([...checked.map((box) => box.value), ...more])];
}

function addFiles(files) {
  for (const file of files) {
    const photo = makeCard(file);
    state.photos.push(photo);
    enqueue(photo);
  }
}

function makeCard(file) {
  const card = $("#photo-card").content.firstElementChild.cloneNode(true);
  $(".name", card).textContent = file.name;
  const picture = $(".picture", card);
  picture.alt = file.name;
  const photo = { file, card, answer: null, crops: {}, heatDrawn: false };
  photo.pictureReady = new Promise((resolve) => {
    picture.onload = () => resolve(true);
    picture.onerror = () => resolve(false);
  });
  picture.src = URL.createObjectURL(file);
  $("#photos").append(card);
  return photo;
}

function enqueue(photo) {
  state.queue = state.queue.then(() => predict(photo)).catch((error) => fail(photo, error.message));
}

async function predict(photo) {
  photo.card.dataset.state = "loading";
  $(".error", photo.card).textContent = "";
  if (state.info && photo.file.size > state.info.max_upload_bytes) {
    const mib = (bytes) => (bytes / 2 ** 20).toFixed(1);
    fail(photo, `${photo.file.name}: the file is ${mib(photo.file.size)} MiB, ` +
      `over this server's limit of ${mib(state.info.max_upload_bytes)} MiB`);
    return;
  }
  const form = new FormData();
  form.append("image", photo.file, photo.file.name);
  form.append("ratios", chosenRatios().join(","));
  let response;
  let answer;
  try {
    response = await fetch("/api/predict", { method: "POST", body: form });
    answer = await response.json();
  } catch (error) {
    fail(photo, `the server did not answer (${error.message})`);
    return;
  }
  if (!response.ok) {
    fail(photo, answer.error || `${response.status} ${response.statusText}`);
    return;
  }
  photo.answer = answer;
  await show(photo);
  photo.card.dataset.state = "done";
}

function fail(photo, message) {
  $(".error", photo.card).textContent = message;
  photo.card.dataset.state = "error";
}

async function show(photo) {
  const { answer, card } = photo;
  const meta = $(".meta", card);
  meta.textContent = `${answer.width} × ${answer.height} px`;
  if ("aesthetics_mean" in answer) {
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = `aesthetics ${answer.aesthetics_mean.toFixed(2)} / 10`;
    meta.append(" · ", score);
  }
  const shown = await photo.pictureReady;
  const picture = $(".picture", card);
  const stage = $(".stage", card);
  if (!shown) {
    stage.classList.add("no-picture");
    $(".error", card).textContent =
      "This browser cannot show this file; the map and crops are drawn without it.";
  } else if (picture.naturalWidth !== answer.width || picture.naturalHeight !== answer.height) {
    $(".error", card).textContent =
      `The browser shows this photo at ${picture.naturalWidth} × ${picture.naturalHeight}, ` +
      `the model read it at ${answer.width} × ${answer.height}.`;
  }
  if (answer.saliency_png && !photo.heatDrawn) {
    await drawHeat($(".heat", card), answer);
    photo.heatDrawn = true;
  }
  drawBoxes(photo);
  await makeDownloads(photo, shown ? picture : null);
}

function drawHeat(canvas, answer) {
  return new Promise((resolve, reject) => {
    const map = new Image();
    map.onload = () => {
      canvas.width = answer.width;
      canvas.height = answer.height;
      const context = canvas.getContext("2d", { willReadFrequently: true });
      context.drawImage(map, 0, 0);
      const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
      const data = pixels.data;
      for (let i = 0; i < data.length; i += 4) {
        const v = 3 * data[i];
        data[i] = JET[v];
        data[i + 1] = JET[v + 1];
        data[i + 2] = JET[v + 2];
        data[i + 3] = 255;
      }
      context.putImageData(pixels, 0, 0);
      resolve();
    };
    map.onerror = () => reject(new Error("the saliency map could not be decoded"));
    map.src = `data:image/png;base64,${answer.saliency_png}`;
  });
}

const BOX_COLOURS = ["#00e5ff", "#ffd60a", "#ff4fa3", "#7cff6b", "#ff9f1c", "#b388ff"];

// Boxes are placed in percent of the photo, so they follow it at any size.
// They often share an edge or a corner, so they carry no label: each has the
// colour of its download button, and pointing at the button highlights it.
function drawBoxes(photo) {
  const { answer, card } = photo;
  const stage = $(".stage", card);
  stage.querySelectorAll(".crop-box").forEach((box) => box.remove());
  Object.entries(answer.crops || {}).forEach(([ratio, box], index) => {
    if (box === null) return;
    const [top, left, height, width] = box;
    const element = document.createElement("div");
    element.className = "crop-box";
    element.dataset.ratio = ratio;
    element.style.setProperty("--box", BOX_COLOURS[index % BOX_COLOURS.length]);
    element.style.top = `${(100 * top) / answer.height}%`;
    element.style.left = `${(100 * left) / answer.width}%`;
    element.style.height = `${(100 * height) / answer.height}%`;
    element.style.width = `${(100 * width) / answer.width}%`;
    element.title = `${ratio} crop`;
    stage.append(element);
  });
}

// Each crop cut from the photo as the browser decoded it (EXIF applied, as
// the server read it), in the photo's format where the browser writes it.
async function makeDownloads(photo, picture) {
  const { answer, card, file } = photo;
  const list = $(".downloads", card);
  for (const crop of Object.values(photo.crops)) URL.revokeObjectURL(crop.url);
  photo.crops = {};
  list.replaceChildren();
  const type = ["image/png", "image/webp"].includes(file.type) ? file.type : "image/jpeg";
  const extension = { "image/png": "png", "image/webp": "webp", "image/jpeg": "jpg" }[type];
  const stem = file.name.replace(/\.[^.]*$/, "") || "photo";
  for (const [index, [ratio, box]] of Object.entries(answer.crops || {}).entries()) {
    const item = document.createElement("li");
    item.style.setProperty("--box", BOX_COLOURS[index % BOX_COLOURS.length]);
    list.append(item);
    if (box === null) {
      item.textContent = `${ratio}: the photo is too small for this ratio`;
      continue;
    }
    if (picture === null) continue;
    const [top, left, height, width] = box;
    const scaleX = picture.naturalWidth / answer.width;
    const scaleY = picture.naturalHeight / answer.height;
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    canvas.getContext("2d").drawImage(
      picture, left * scaleX, top * scaleY, width * scaleX, height * scaleY,
      0, 0, width, height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, type, 0.95));
    const url = URL.createObjectURL(blob);
    photo.crops[ratio] = { box, url, type: blob.type };
    const link = document.createElement("a");
    const drawn = $(`.crop-box[data-ratio="${ratio}"]`, card);
    link.addEventListener("mouseenter", () => drawn.classList.add("highlight"));
    link.addEventListener("mouseleave", () => drawn.classList.remove("highlight"));
    link.href = url;
    // As `python -m aesthal.predict --crops` names them: photo_crop_16x9.jpg.
    const tag = ratio.split(":").map((side) => Number(side)).join("x");
    link.download = `${stem}_crop_${tag}.${extension}`;
    link.textContent = `${ratio} crop · ${width} × ${height}`;
    item.append(link);
  }
}

function setOpacity() {
  document.documentElement.style.setProperty("--heat-opacity", $("#opacity").value / 100);
}

function ratiosChanged() {
  for (const photo of state.photos) if (photo.answer) enqueue(photo);
}

document.addEventListener("DOMContentLoaded", () => {
  loadInfo();
  setOpacity();
  $("#files").addEventListener("change", (event) => {
    addFiles(event.target.files);
    event.target.value = "";
  });
  $("#opacity").addEventListener("input", setOpacity);
  document.querySelectorAll("#ratios input[type=checkbox]").forEach((box) =>
    box.addEventListener("change", ratiosChanged));
  $("#more-ratios").addEventListener("change", ratiosChanged);
  // A photo dropped anywhere on the page is added (not opened by the browser).
  const drop = $("#drop");
  document.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  document.addEventListener("dragleave", () => drop.classList.remove("over"));
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addFiles(event.dataTransfer.files);
  });
});
