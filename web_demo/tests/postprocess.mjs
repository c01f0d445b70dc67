// Check site/core.js's mask clean-up against core/postprocess.py (pairs written by android_demo/tools/make_golden.py
// postprocess_files):   node web_demo/tests/postprocess.mjs GOLDEN_DIR
// Prints one JSON line per case: its size, steps, and the pixels where core.js and Python differ (0 expected).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { postprocess } from "../site/core.js";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node web_demo/tests/postprocess.mjs GOLDEN_DIR");
  process.exit(2);
}
for (const line of readFileSync(join(dir, "postprocess.txt"), "utf8").trim().split("\n")) {
  const [name, hs, ws, steps] = line.split(" ");
  const h = Number(hs), w = Number(ws);
  const input = new Uint8Array(readFileSync(join(dir, `${name}.pin`)));
  const want = new Uint8Array(readFileSync(join(dir, `${name}.pout`)));
  const before = input.slice();
  const got = postprocess(input, h, w, steps.split(","));
  let differ = 0, foreground = 0;
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) differ++;
    foreground += got[i];
  }
  let touched = 0;
  for (let i = 0; i < input.length; i++) if (input[i] !== before[i]) touched++;
  console.log(JSON.stringify({ name, height: h, width: w, steps, pixels: want.length, got_pixels: got.length,
                               foreground, differ, input_changed: touched }));
}
