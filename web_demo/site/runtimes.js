// The two browser runtimes behind one interface: `await open(entry, threads)` -> {name, threads, run(input)},
// where `entry` is the model's line in models/manifest.json and run(Float32Array input in entry.layout)
// resolves to the logits at entry.input_size (Float32Array). Every file is loaded from this page's own origin.

const here = (path) => new URL(path, import.meta.url).href;

async function openOrt(entry, threads) {
  const ort = await import("./vendor/ort/ort.wasm.min.mjs");
  ort.env.wasm.wasmPaths = here("vendor/ort/");  // never a CDN: the files are served beside the page
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = "error";
  const session = await ort.InferenceSession.create(here(`models/${entry.file}`), {
    executionProviders: ["wasm"], graphOptimizationLevel: entry.graph_optimization || "all",
  });
  const inputName = session.inputNames[0], outputName = session.outputNames[0];
  const size = entry.input_size;
  return {
    name: `onnxruntime-web ${ort.env.versions.web} (WASM)`,
    threads: ort.env.wasm.numThreads,
    async run(input) {
      const feeds = { [inputName]: new ort.Tensor("float32", input, [1, 3, size, size]) };
      const out = await session.run(feeds);
      const data = out[outputName].data;
      for (const t of Object.values(out)) t.dispose();
      return data;
    },
  };
}

let liteRtThreads = null;  // LiteRT.js is loaded once per page, threaded or not

async function openLiteRt(entry, threads) {
  const litert = await import("./vendor/litert/core/index.js");
  if (liteRtThreads === null) {
    // never a CDN: LiteRT.js has no default path, so it gets this page's copy of its wasm folder
    await litert.loadLiteRt(here("vendor/litert/wasm/"), { threads: threads > 1 });
    liteRtThreads = threads > 1;
  }
  const bytes = new Uint8Array(await (await fetch(here(`models/${entry.file}`))).arrayBuffer());
  const model = await litert.loadAndCompile(bytes, { accelerator: "wasm", cpuOptions: { numThreads: threads } });
  const size = entry.input_size;
  return {
    name: "LiteRT.js (WASM, XNNPACK)",
    threads: liteRtThreads ? threads : 1,
    async run(input) {
      const tensor = new litert.Tensor(input, [1, size, size, 3]);
      const outs = await model.run(tensor);
      const data = outs[0].toTypedArray().slice();
      tensor.delete();
      for (const t of outs) t.delete();
      return data;
    },
  };
}

const OPENERS = { "onnxruntime-web": openOrt, "litert.js": openLiteRt };

export async function open(entry, threads) {
  const opener = OPENERS[entry.runtime];
  if (!opener) throw new Error(`${entry.file}: no browser runtime for ${entry.runtime}; use a .onnx or .tflite file`);
  return opener(entry, threads);
}
