// The measurement protocol of benchmarks/harness.py, in the page: load, first inference,
// warm-up, steady state (min runs and min time, capped by max time and max runs), a batch
// run for throughput, and outputs for parity inputs, read back so Python can compare them.
"use strict";

function heap() {
  // Chromium only; quantized unless chromium runs with --enable-precise-memory-info.
  return performance.memory ? performance.memory.usedJSHeapSize : null;
}

async function loop(fn, minRuns, minS, maxS, maxRuns) {
  const times = [];
  const start = performance.now();
  for (;;) {
    const t0 = performance.now();
    await fn();
    const t1 = performance.now();
    times.push(t1 - t0);
    const el = (t1 - start) / 1000;
    if ((times.length >= minRuns && el >= minS) || el >= maxS || times.length >= maxRuns) return times;
  }
}

function product(shape) { return shape.reduce((a, b) => a * b, 1); }

function randomInput(shape, dtype, seed) {
  // deterministic normal-ish values (sum of uniforms), same spirit as the native worker's
  let s = seed >>> 0 || 1;
  const rnd = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
  const n = product(shape);
  const a = dtype === "int32" ? new Int32Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = dtype === "int32" ? Math.floor(rnd() * 100) : (rnd() + rnd() + rnd() - 1.5) * 2;
  return a;
}

// TF.js waits for the response headers of every weight shard before it reads any body: over HTTP/1.1 (6
// connections per host) a model of more than 6 shards then never loads. Reading each body as it arrives frees
// its connection (the bundles' model.js does the same).
async function fetchWhole(url, init) {
  const r = await fetch(url, init);
  if (!r.ok) return r;
  return new Response(await r.arrayBuffer(), {status: r.status, statusText: r.statusText, headers: r.headers});
}

async function tfjsSession(cfg) {
  const tf = window.tf;
  // TF.js's own thread choice is kept (hardwareConcurrency/2 under cross-origin isolation; its thread
  // pool is sized at start-up, so setThreadsCount cannot go above it): the row reports what ran.
  if (cfg.backend === "wasm") tf.wasm.setWasmPaths(new URL("tfjs/", location.href).href);
  const ok = await tf.setBackend(cfg.backend).catch(() => false);
  if (!ok) throw new Error("TF.js backend " + cfg.backend + " is not available in this browser");
  await tf.ready();
  const model = await tf.loadGraphModel(cfg.modelUrl, {fetchFunc: fetchWhole});
  const dtype = cfg.inputDtype === "int64" ? "int32" : cfg.inputDtype;
  return {
    backend: tf.getBackend(),
    detail: () => {
      const d = {tfjs: tf.version.tfjs, tensors: tf.memory().numTensors, tensor_bytes: tf.memory().numBytes};
      if (tf.getBackend() === "wasm") {
        d.simd = tf.env().getBool("WASM_HAS_SIMD_SUPPORT");
        d.threads = tf.env().getBool("WASM_HAS_MULTITHREAD_SUPPORT") ? tf.wasm.getThreadsCount() : 1;
      }
      if (tf.getBackend() === "webgl") {
        d.webgl_version = tf.env().getNumber("WEBGL_VERSION");
        d.float32_render = tf.env().getBool("WEBGL_RENDER_FLOAT32_ENABLED");
        const gl = document.createElement("canvas").getContext("webgl2");
        const ext = gl && gl.getExtension("WEBGL_debug_renderer_info");
        d.renderer = ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : null;
      }
      return d;
    },
    async run(data, shape) {
      const x = tf.tensor(data, shape, dtype);
      const y = model.execute(x);
      const out = Array.isArray(y) ? y[0] : y;
      const v = await out.data();  // forces the work (webgl is lazy) and reads back
      tf.dispose([x, y]);
      return v;
    },
  };
}

async function ortSession(cfg) {
  const ort = window.ort;
  ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;
  ort.env.wasm.numThreads = crossOriginIsolated ? (navigator.hardwareConcurrency || 1) : 1;
  ort.env.wasm.simd = true;
  const opts = {executionProviders: ["wasm"]};
  if (cfg.externalData && cfg.externalData.length) opts.externalData = cfg.externalData;
  const sess = await ort.InferenceSession.create(cfg.modelUrl, opts);
  const name = sess.inputNames[0];
  const dtype = cfg.inputDtype;
  return {
    backend: "wasm",
    detail: () => ({ort: ort.env.versions ? ort.env.versions.web : null, threads: ort.env.wasm.numThreads}),
    async run(data, shape) {
      const feeds = {[name]: new ort.Tensor(dtype, data, shape)};
      const res = await sess.run(feeds);
      return res[sess.outputNames[0]].data;
    },
  };
}

window.runBench = async function (cfg) {
  await window.runtimeReady;
  const b = cfg.bounds;
  let peak = heap();
  const note = () => { const h = heap(); if (h !== null && (peak === null || h > peak)) peak = h; };
  const t0 = performance.now();
  const sess = cfg.runtime === "ort" ? await ortSession(cfg) : await tfjsSession(cfg);
  const loadMs = performance.now() - t0;
  const x = randomInput(cfg.inputShape, cfg.inputDtype, cfg.seed + 1);
  const t1 = performance.now();
  await sess.run(x, cfg.inputShape);
  const firstMs = performance.now() - t1;
  note();
  const warm = b.warmup_runs ? await loop(() => sess.run(x, cfg.inputShape), b.warmup_runs, b.warmup_seconds,
                                          b.max_seconds, b.max_runs) : [];
  note();
  const steady = await loop(() => sess.run(x, cfg.inputShape), b.min_runs, b.min_seconds, b.max_seconds, b.max_runs);
  note();
  const res = {load_ms: loadMs, first_ms: firstMs, warmup_runs: warm.length, warmup_ms: warm.reduce((a, c) => a + c, 0),
               samples_ms: steady, backend: sess.backend};
  if (b.batch) {
    const shape = [b.batch, ...cfg.inputShape.slice(1)];
    const xb = randomInput(shape, cfg.inputDtype, cfg.seed + 2);
    let fn;
    try {
      await sess.run(xb, shape);
      fn = () => sess.run(xb, shape);
      res.batch_mode = 'batched';
    } catch (e) {
      // a fixed batch of 1 (TF.js from onnx2tf): the same inputs as back-to-back single calls
      res.batch_error = String(e).slice(0, 200);
      res.batch_mode = 'sequential';
      const per = product(cfg.inputShape);
      const singles = Array.from({length: b.batch}, (_, i) => xb.subarray(i * per, (i + 1) * per));
      fn = async () => { for (const one of singles) await sess.run(one, cfg.inputShape); };
    }
    res.batch_samples_ms = await loop(fn, 3, b.batch_seconds, Math.max(b.batch_seconds, 0.05) * 4, b.max_runs);
    res.batch = b.batch;
    note();
  }
  if (cfg.parityInputs) {
    const per = product(cfg.inputShape);
    const n = cfg.parityInputs.length / per;
    const outs = [];
    for (let i = 0; i < n; i++) {
      const xi = cfg.inputDtype === "float32" ? Float32Array.from(cfg.parityInputs.slice(i * per, (i + 1) * per))
                                              : Int32Array.from(cfg.parityInputs.slice(i * per, (i + 1) * per));
      outs.push(Array.from(await sess.run(xi, cfg.inputShape)));
    }
    res.outputs = outs;
  }
  res.detail = sess.detail();
  res.js_heap_peak_bytes = peak;
  res.cross_origin_isolated = crossOriginIsolated;
  res.hardware_concurrency = navigator.hardwareConcurrency;
  res.user_agent = navigator.userAgent;
  return res;
};
