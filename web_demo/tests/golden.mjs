// Check site/core.js against Python golden pairs (android_demo/tools/make_golden.py):
//   node web_demo/tests/golden.mjs GOLDEN_DIR
// Prints one JSON line per case: the largest input and probability differences, and the mask pixels that
// differ away from the threshold. tests/web_demo/test_site.py runs it and applies the gates.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { INPUT_SIZE, THRESHOLD, mask, probabilities, toInput } from "../site/core.js";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node web_demo/tests/golden.mjs GOLDEN_DIR");
  process.exit(2);
}
const f32 = (name) => {
  const b = readFileSync(join(dir, name));
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};
const maxDiff = (a, b) => {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
};

for (const line of readFileSync(join(dir, "index.txt"), "utf8").trim().split("\n")) {
  const [name, hs, ws, ss] = line.split(" ");
  const h = Number(hs), w = Number(ws), size = Number(ss || INPUT_SIZE);  // 128 for the edge model's cases
  const rgb = new Uint8Array(readFileSync(join(dir, `${name}.rgb`)));
  const inputNhwc = toInput(rgb, h, w, 3, "NHWC", size);
  const inputNchw = toInput(rgb, h, w, 3, "NCHW", size);
  const want = f32(`${name}.input`);  // NHWC
  let layoutDiff = 0;
  const plane = size * size;
  for (let i = 0; i < plane; i++) for (let k = 0; k < 3; k++) {
    layoutDiff = Math.max(layoutDiff, Math.abs(inputNchw[k * plane + i] - inputNhwc[i * 3 + k]));
  }
  const prob = probabilities(f32(`${name}.logits`), h, w, size);
  const wantProb = f32(`${name}.prob`);
  const got = mask(prob, THRESHOLD);
  const wantMask = readFileSync(join(dir, `${name}.mask`));
  let differ = 0, differAwayFromThreshold = 0;
  for (let i = 0; i < got.length; i++) {
    if (got[i] !== wantMask[i]) {
      differ++;
      if (Math.abs(wantProb[i] - THRESHOLD) > 1e-4) differAwayFromThreshold++;
    }
  }
  console.log(JSON.stringify({
    name, height: h, width: w, size, input_max_diff: maxDiff(inputNhwc, want), layout_max_diff: layoutDiff,
    prob_max_diff: maxDiff(prob, wantProb), mask_pixels: got.length, mask_foreground: got.reduce((a, v) => a + v, 0),
    mask_differ: differ, mask_differ_away_from_threshold: differAwayFromThreshold,
  }));
}
