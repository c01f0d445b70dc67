// The page: pick a photo (file input, drag-and-drop or camera), segment it with the model chosen in the menu,
// draw the overlay and contour, and show the lesion area, the inference time, the model file and the runtime.
// `window.aulunet` is the hook that tests/web_demo/test_site.py and web_demo/bench.py drive.
import { imageProblem, overlay, segment } from "./core.js";
import { open } from "./runtimes.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const maxThreads = crossOriginIsolated ? Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 4)) : 1;

let runtime = null, entry = null, checks = null, lastPixels = null, seq = 0;
const api = { ready: null, last: null, errors: 0 };
window.aulunet = api;

function say(text) { $("status").textContent = text; }

function fail(text) {
  api.errors += 1;
  api.lastError = text;
  $("error").textContent = text;
  $("error").hidden = false;
}

function reopenWith(key, value) {
  const p = new URLSearchParams(location.search);
  p.set(key, value);
  location.search = p.toString();  // runtimes fix their thread count at load: a fresh page is the clean way
}

async function loadModel() {
  const manifest = await (await fetch("models/manifest.json")).json();
  checks = manifest.input_checks;
  const want = params.get("model") || manifest.default;
  entry = manifest.models.find((m) => m.file === want);
  if (!entry) throw new Error(`model=${want}: not served here; choose one of ${manifest.models.map((m) => m.file).join(", ")}`);
  const threadsWanted = Math.min(Math.max(parseInt(params.get("threads") || maxThreads, 10) || 1, 1), maxThreads);
  for (const m of manifest.models) {
    const q = m.quantize === "none" ? "fp32" : m.quantize;
    const tag = m.file === manifest.default ? ", default" : "";
    $("model").add(new Option(`${m.file} (${m.runtime}, ${q}${tag})`, m.file, false, m === entry));
  }
  for (let t = 1; t <= maxThreads; t++) $("threads").add(new Option(String(t), String(t), false, t === threadsWanted));
  $("model").onchange = () => reopenWith("model", $("model").value);
  $("threads").onchange = () => reopenWith("threads", $("threads").value);
  const t0 = performance.now();
  runtime = await open(entry, threadsWanted);
  await runtime.run(new Float32Array(3 * entry.input_size * entry.input_size).fill(0.5));  // warm-up: the first run is slow
  api.info = {
    file: entry.file, runtime: runtime.name, runtimeKey: entry.runtime, threads: runtime.threads,
    layout: entry.layout, quantize: entry.quantize, postprocess: entry.postprocess || [], crossOriginIsolated,
    loadMs: performance.now() - t0,
  };
  say(`Ready: ${entry.file} on ${runtime.name}, ${runtime.threads} thread${runtime.threads > 1 ? "s" : ""}` +
      (crossOriginIsolated ? "" : " (not cross-origin isolated: threads off)") + ".");
}

function drawable(source) {
  const w = source.videoWidth || source.width, h = source.videoHeight || source.height;  // a video frame, or a bitmap
  const canvas = $("view");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(source, 0, 0);
  return { ctx, w, h };
}

async function segmentSource(source, label) {
  await api.ready;
  const { ctx, w, h } = drawable(source);
  const rgba = ctx.getImageData(0, 0, w, h);
  const problem = imageProblem(rgba.data, h, w, 4, checks);
  if (problem) {
    $("view").hidden = $("stats").hidden = true;
    fail(`${label}: ${problem}`);
    return null;
  }
  const res = await segment(rgba.data, h, w, 4, entry.layout, (x) => runtime.run(x), entry.threshold, entry.input_size,
                              entry.postprocess || []);
  lastPixels = rgba;
  ctx.putImageData(new ImageData(overlay(rgba.data, res.mask, h, w), w, h), 0, 0);
  $("view").hidden = false;
  $("hint").hidden = true;
  $("error").hidden = true;
  $("area").textContent = `${(100 * res.area).toFixed(1)} % of the photo`;
  $("ms").textContent = `${res.ms.model.toFixed(1)} ms`;
  $("prepost").textContent = `${(res.ms.pre + res.ms.post).toFixed(1)} ms`;
  $("photo").textContent = `${label} (${w} x ${h})`;
  $("modelfile").textContent = entry.file;
  $("runtime").textContent = `${runtime.name}, ${runtime.threads} thread${runtime.threads > 1 ? "s" : ""}`;
  $("stats").hidden = false;
  api.last = { seq: ++seq, label, width: w, height: h, area: res.area, ms: res.ms, mask: res.mask, logits: res.logits, input: res.input,
               file: entry.file, runtime: runtime.name };
  return api.last;
}

async function segmentFile(file) {
  let bitmap;
  try {
    // the pixels as stored (no colour-profile conversion), as Python's PIL reads them, turned by the photo's EXIF
    // orientation tag as every viewer shows it (Python: ImageOps.exif_transpose in model/data/; Android:
    // Orientation.apply); said explicitly, since older engines took the default "none" to mean ignore the tag
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image", colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch {
    fail(`${file.name}: cannot read this file as an image; choose a JPEG, PNG, BMP or WebP photo`);
    return null;
  }
  try {
    return await segmentSource(bitmap, file.name);
  } finally {
    bitmap.close();
  }
}

function wireInputs() {
  $("file").addEventListener("change", (e) => {
    const f = e.target.files[0];
    if (f) segmentFile(f).catch((err) => fail(`${f.name}: ${err.message}`));
    e.target.value = "";
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const f = e.dataTransfer.files[0];
    if (f) segmentFile(f).catch((err) => fail(`${f.name}: ${err.message}`));
  });
  if (navigator.mediaDevices?.getUserMedia) {
    $("camera").hidden = false;
    $("camera").onclick = async () => {
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
        const video = $("video");
        video.srcObject = stream;
        video.hidden = false;
        $("view").hidden = true;
        await video.play();
        $("capture").hidden = false;
      } catch (err) {
        fail(`camera: ${err.message || err.name}; allow camera access or choose a photo instead`);
      }
    };
    $("capture").onclick = async () => {
      const video = $("video");
      try {
        await segmentSource(video, "camera frame");
      } catch (err) {
        fail(`camera frame: ${err.message}`);
      } finally {
        video.srcObject?.getTracks().forEach((t) => t.stop());
        video.srcObject = null;
        video.hidden = true;
        $("capture").hidden = true;
      }
    };
  }
}

// For tests and benchmarks: run the model alone on a given input (Python's tensor), and time it.
api.runTensor = async (input) => (await api.ready, runtime.run(input));

// Warm-up: at least `warmup` runs and `warmupMs` of running. V8 first runs WebAssembly from its baseline
// compiler and tiers hot functions up in the background; on a busy machine that takes seconds.
async function timeRuns(fn, runs, warmup, warmupMs = 0) {
  const t0 = performance.now();
  for (let i = 0; i < warmup || performance.now() - t0 < warmupMs; i++) await fn();
  const ms = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  return ms;
}

/** ms per run of the model alone on the last photo's input tensor (or a grey one). */
api.bench = async (runs = 30, warmup = 5, warmupMs = 0) => {
  await api.ready;
  const x = api.last?.input ?? new Float32Array(3 * entry.input_size * entry.input_size).fill(0.5);
  return timeRuns(() => runtime.run(x), runs, warmup, warmupMs);
};

/** ms per run of the whole pipeline on the last photo's pixels: preprocess, model, probabilities, mask. */
api.benchEndToEnd = async (runs = 30, warmup = 2) => {
  await api.ready;
  const { data, height, width } = lastPixels;
  return timeRuns(() => segment(data, height, width, 4, entry.layout, (x) => runtime.run(x), entry.threshold, entry.input_size,
                               entry.postprocess || []), runs, warmup);
};

wireInputs();
api.ready = loadModel().catch((err) => {
  fail(err.message);
  say("The model could not be loaded.");
  throw err;
});
api.ready.catch(() => {});
// Offline reloads (sw.js): once the model is ready, hand the worker the list of files this page loaded.
api.offline = new Promise((resolve) => {
  if (!("serviceWorker" in navigator) || params.get("sw") === "0") return resolve(false);
  navigator.serviceWorker.addEventListener("message", (e) => {
    if (e.data?.type === "cached") resolve(true);
    if (e.data?.type === "cache-failed") resolve(false);
  });
  navigator.serviceWorker.startMessages();
  navigator.serviceWorker.register("sw.js").catch(() => resolve(false));
  Promise.all([api.ready, navigator.serviceWorker.ready]).then(([, reg]) => {
    const urls = [location.href, ...performance.getEntriesByType("resource").map((e) => e.name)]
      .filter((u) => new URL(u).origin === location.origin);
    reg.active.postMessage({ type: "cache", urls });
  }, () => resolve(false));
});
