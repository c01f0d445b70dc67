// The toolkit's preprocessing and postprocessing (core/preprocess.py), in plain JavaScript with no DOM:
// the page uses it in the browser and tests/web_demo/test_site.py checks it under Node against the same Python
// golden pairs as the Android core (android_demo/tools/make_golden.py).
//
// Input: RGB(A) bytes -> bilinear resize to 256x256 with half-pixel centres and no antialiasing (source
// coordinates clamped to the image) -> per-image min-max over all pixels and channels to [0, 1] (a constant
// image becomes zeros) -> float32 NCHW (ONNX) or NHWC (TFLite).
// Output: probability = sigmoid(logit), resized back to the photo's size with the same bilinear rule,
// lesion = probability > threshold, then the mask clean-up the model's metadata lists (core/postprocess.py:
// largest-component, fill-holes; the manifest's `postprocess`), in that order.

export const INPUT_SIZE = 256;
export const THRESHOLD = 0.5;

/** Source index pairs and weights of half-pixel bilinear resampling from nIn to nOut samples. */
export function taps(nIn, nOut) {
  const i0 = new Int32Array(nOut), i1 = new Int32Array(nOut), w1 = new Float64Array(nOut);
  const scale = nIn / nOut;
  for (let o = 0; o < nOut; o++) {
    const src = Math.min(Math.max((o + 0.5) * scale - 0.5, 0), nIn - 1);
    const a = Math.floor(src);
    i0[o] = a;
    i1[o] = Math.min(a + 1, nIn - 1);
    w1[o] = src - a;
  }
  return { i0, i1, w1 };
}

/**
 * Bilinear resize of an interleaved image with `stride` values per pixel, of which the first `channels`
 * are kept: h x w -> outH x outW x channels, Float32Array.
 */
export function resizeBilinear(src, h, w, stride, channels, outH, outW) {
  if (!(h > 0 && w > 0) || src.length !== h * w * stride) {
    throw new Error(`image has ${src.length} values, expected ${h}x${w}x${stride}`);
  }
  const ty = taps(h, outH), tx = taps(w, outW);
  const out = new Float32Array(outH * outW * channels);
  for (let y = 0; y < outH; y++) {
    const r0 = ty.i0[y] * w, r1 = ty.i1[y] * w, wy1 = ty.w1[y], wy0 = 1 - wy1;
    for (let x = 0; x < outW; x++) {
      const c0 = tx.i0[x], c1 = tx.i1[x], wx1 = tx.w1[x], wx0 = 1 - wx1;
      const o = (y * outW + x) * channels;
      for (let k = 0; k < channels; k++) {
        const left = wy0 * src[(r0 + c0) * stride + k] + wy1 * src[(r1 + c0) * stride + k];
        const right = wy0 * src[(r0 + c1) * stride + k] + wy1 * src[(r1 + c1) * stride + k];
        out[o + k] = wx0 * left + wx1 * right;
      }
    }
  }
  return out;
}

/** Per-image min-max to [0, 1], in place; a constant image becomes zeros. */
export function minMaxScale(x) {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!(hi > lo)) return x.fill(0);
  const range = hi - lo;
  for (let i = 0; i < x.length; i++) x[i] = (x[i] - lo) / range;
  return x;
}

/**
 * Why a photo cannot be segmented (core/preprocess.py's image_problem: too small, or no contrast), or null.
 * `checks` is the manifest's {min_image_side, min_contrast}.
 */
export function imageProblem(pixels, height, width, stride, checks) {
  const side = checks?.min_image_side || 0, contrast = checks?.min_contrast || 0;
  if (Math.min(height, width) < side) {
    return `image is ${width}x${height} pixels, below the ${side}x${side} minimum (scaled up to ${INPUT_SIZE}x${INPUT_SIZE} ` +
      "it cannot show a lesion); use the full-size photo";
  }
  let lo = 255, hi = 0;
  for (let i = 0; i < pixels.length; i += stride) {
    for (let k = 0; k < 3; k++) {
      const v = pixels[i + k];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (hi - lo < contrast) {
    return `image has no contrast (every value within ${lo}..${hi}; at least ${contrast} grey levels needed): ` +
      "min-max scaling would turn a flat image into a lesion; use a real photo";
  }
  return null;
}

/** HWC -> CHW of a size x size x c Float32Array. */
export function toNchw(hwc, size, c) {
  const out = new Float32Array(hwc.length), plane = size * size;
  for (let i = 0; i < plane; i++) for (let k = 0; k < c; k++) out[k * plane + i] = hwc[i * c + k];
  return out;
}

/**
 * Pixels as decoded (`stride` 3 for RGB, 4 for the canvas's RGBA; alpha ignored) -> the model input,
 * float32 of INPUT_SIZE x INPUT_SIZE x 3 in `layout` "NHWC" or "NCHW".
 */
export function toInput(pixels, height, width, stride = 4, layout = "NCHW", size = INPUT_SIZE) {
  if (!(height > 0 && width > 0) || pixels.length !== height * width * stride) {
    throw new Error(`expected ${height}x${width}x${stride} pixel bytes, got ${pixels.length}`);
  }
  const hwc = minMaxScale(resizeBilinear(pixels, height, width, stride, 3, size, size));
  if (layout === "NHWC") return hwc;
  if (layout === "NCHW") return toNchw(hwc, size, 3);
  throw new Error(`unknown layout ${layout}; use NCHW or NHWC`);
}

export function sigmoid(x) {
  return 0.5 * (1 + Math.tanh(0.5 * x));
}

/** Logits (size x size, one channel) -> probabilities at height x width (Float32Array). */
export function probabilities(logits, height, width, size = INPUT_SIZE) {
  const p = new Float32Array(logits.length);
  for (let i = 0; i < p.length; i++) p[i] = sigmoid(logits[i]);
  return resizeBilinear(p, size, size, 1, 1, height, width);
}

/** Probabilities -> Uint8Array mask of 0/1 (lesion = probability > threshold). */
export function mask(prob, threshold = THRESHOLD) {
  const m = new Uint8Array(prob.length);
  for (let i = 0; i < prob.length; i++) m[i] = prob[i] > threshold ? 1 : 0;
  return m;
}

/** The mask clean-up steps of core/postprocess.py, in the order they run. */
export const POSTPROCESS_STEPS = ["largest-component", "fill-holes"];

/**
 * Label the components of pixels equal to `value` by a stack flood fill, seeds in row-major order; `diagonal`:
 * 8-connected, else 4-connected. Returns Int32Array labels (0 elsewhere, 1.. in order of each component's first
 * pixel) and the sizes (sizes[k] of label k + 1).
 */
function components(m, height, width, value, diagonal) {
  const labels = new Int32Array(m.length), stack = new Int32Array(m.length), sizes = [];
  for (let seed = 0; seed < m.length; seed++) {
    if ((m[seed] ? 1 : 0) !== value || labels[seed]) continue;
    const label = sizes.length + 1;
    let top = 0, size = 0;
    labels[seed] = label;
    stack[top++] = seed;
    while (top > 0) {
      const i = stack[--top], y = (i / width) | 0, x = i - y * width;
      size++;
      for (let dy = -1; dy <= 1; dy++) {
        const ny = y + dy;
        if (ny < 0 || ny >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const nx = x + dx;
          if ((dx === 0 && dy === 0) || nx < 0 || nx >= width || (!diagonal && dx !== 0 && dy !== 0)) continue;
          const j = ny * width + nx;
          if ((m[j] ? 1 : 0) === value && !labels[j]) {
            labels[j] = label;
            stack[top++] = j;
          }
        }
      }
    }
    sizes.push(size);
  }
  return { labels, sizes };
}

/** Only the largest 8-connected lesion region (ties: the one whose first pixel in row-major order comes first). */
export function largestComponent(m, height, width) {
  const { labels, sizes } = components(m, height, width, 1, true);
  let best = 0;
  for (let k = 1; k < sizes.length; k++) if (sizes[k] > sizes[best]) best = k;
  const out = new Uint8Array(m.length);
  for (let i = 0; i < m.length; i++) out[i] = sizes.length && labels[i] === best + 1 ? 1 : 0;
  return out;
}

/** Every background region (4-connected) that does not touch the image border becomes lesion. */
export function fillHoles(m, height, width) {
  const { labels, sizes } = components(m, height, width, 0, false);
  const open = new Uint8Array(sizes.length + 1);
  for (let x = 0; x < width; x++) open[labels[x]] = open[labels[(height - 1) * width + x]] = 1;
  for (let y = 0; y < height; y++) open[labels[y * width]] = open[labels[y * width + width - 1]] = 1;
  const out = new Uint8Array(m.length);
  for (let i = 0; i < m.length; i++) out[i] = m[i] || !open[labels[i]] ? 1 : 0;
  return out;
}

/** The mask after `steps` (names of POSTPROCESS_STEPS), run in POSTPROCESS_STEPS order whatever order given. */
export function postprocess(m, height, width, steps = []) {
  for (const s of steps) {
    if (!POSTPROCESS_STEPS.includes(s)) throw new Error(`postprocess '${s}': unknown step; use ${POSTPROCESS_STEPS.join(", ")}`);
  }
  let out = m;
  if (steps.includes("largest-component")) out = largestComponent(out, height, width);
  if (steps.includes("fill-holes")) out = fillHoles(out, height, width);
  return out;
}

/** Fraction of the image that is lesion. */
export function areaFraction(m) {
  let n = 0;
  for (let i = 0; i < m.length; i++) n += m[i];
  return m.length ? n / m.length : 0;
}

/** Lesion pixels with a non-lesion 4-neighbour (or on the image border). */
export function contour(m, height, width) {
  const c = new Uint8Array(m.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (!m[i]) continue;
      c[i] = y === 0 || x === 0 || y === height - 1 || x === width - 1
        || !m[i - width] || !m[i + width] || !m[i - 1] || !m[i + 1] ? 1 : 0;
    }
  }
  return c;
}

/**
 * RGBA photo + mask -> RGBA overlay (new array): lesion tinted with `tint` ([r, g, b]) at `alpha`, the
 * contour drawn in `tint`, opaque.
 */
export function overlay(rgba, m, height, width, tint = [255, 64, 32], alpha = 0.4) {
  const edge = contour(m, height, width);
  const out = new Uint8ClampedArray(rgba.length);
  for (let i = 0; i < m.length; i++) {
    const o = 4 * i;
    for (let k = 0; k < 3; k++) {
      const v = rgba[o + k];
      out[o + k] = edge[i] ? tint[k] : m[i] ? Math.round((1 - alpha) * v + alpha * tint[k]) : v;
    }
    out[o + 3] = 255;
  }
  return out;
}

/** The whole pipeline around a model: pixels -> input tensor -> run(tensor) -> probabilities, mask.
 *  `size`: the model's square input side (its metadata's input_size: 256, or 128 for aulunet_v3_in128);
 *  `steps`: the mask clean-up its metadata lists (the manifest entry's `postprocess`; none by default). */
export async function segment(pixels, height, width, stride, layout, run, threshold = THRESHOLD, size = INPUT_SIZE, steps = []) {
  const t0 = performance.now();
  const input = toInput(pixels, height, width, stride, layout, size);
  const t1 = performance.now();
  const logits = await run(input);
  const t2 = performance.now();
  const prob = probabilities(logits, height, width, size);
  const m = postprocess(mask(prob, threshold), height, width, steps);
  const t3 = performance.now();
  return { input, logits, prob, mask: m, area: areaFraction(m), ms: { pre: t1 - t0, model: t2 - t1, post: t3 - t2, total: t3 - t0 } };
}
