"""Browser-ready bundles: a folder a web developer serves as it is, and the checks that run it in Chromium.

    <bundle>/model/            the model (TF.js graph model, or model.onnx)
    <bundle>/runtime/          runtime files copied from node_modules (compressor.chromium.copy_runtime)
    <bundle>/model.js, .d.ts   ES module load()/predict() and its TypeScript declaration
    <bundle>/index.html        runs example.json and shows the prediction and the latency
    <bundle>/example.json      one held-out input and PyTorch's output for it
    <bundle>/manifest.json     files, sizes, I/O, labels, image preprocessing, (after the browser check) parity
    <bundle>/README.md         how to use and serve it (COOP/COEP headers for threads)
The parity checks load the model through the bundle's own model.js, so what ships is what was checked.
predict() takes a flat array, or an image (<img>, canvas, ImageBitmap, ImageData) that templates/image.js
turns into the model's input as the run's data were (meta["preprocess"], compressor/preprocess.py's record).
"""
from __future__ import annotations

import base64
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from compressor.core import chromium, feeds
from compressor.core.errors import CompressError, ConverterError
from compressor.core.files import file_rows

TEMPLATES = Path(__file__).parent / "templates"
RUNTIMES = {"tfjs": ("tfjs", "tfjs.js", "TensorFlow.js (wasm backend)"),
            "ort": ("ort", "ort.js", "onnxruntime-web (wasm)")}
# Page time limits scale with the model: a hung page fails in minutes, a big model on a busy machine
# still finishes. Measured on ResNet-18 (44.6 MB, TF.js wasm, 2 vCPU): load 0.8 s, first inference
# 0.26 s, then 0.13 s each; the limits leave 50x or more of slack.
LOAD_MS = (60_000, 3_000)  # load (runtime, model, first inference): base + per MB of model files
INFER_MS_PER_MB = 200  # index.html's 11 runs, before anything is measured: per MB of model, per run
RUN_MS = (60_000, 10)  # the parity inputs: base + this many times the first inference, per input


def _fill(text: str, values: dict[str, str]) -> str:
    for k, v in values.items():
        text = text.replace(f"__{k}__", v)
    return text


def image_preprocess(recorded: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run's image preprocessing (compressor/preprocess.py's to_dict(), or None when the data were not
    image files) with the two numbers model.js needs: the crop fraction and the pixel divisor."""
    if not recorded:
        return None
    crop = re.search(r"size / ([0-9.]+)", str(recorded.get("resize", "")))
    divisor = re.search(r"pixels / ([0-9.]+)", str(recorded.get("scale", "")))
    if not crop or not divisor:
        raise ConverterError(f"cannot read the recorded image preprocessing {recorded} (resize or scale); "
                             "the bundle's predict() would not match the run's data")
    return {**recorded, "cropFraction": float(crop[1]), "divisor": float(divisor[1])}


def write(dest: Path, *, runtime: str, meta: dict[str, Any], example: np.ndarray, expected: np.ndarray,
          title: str, model_file: str) -> None:
    """Write everything but the model (already in dest/model/) into the bundle folder `dest`.

    meta["preprocess"] (optional) is the run's image preprocessing (`image_preprocess`); meta["labels"] a
    classifier's class names. Both go into model.js's META and manifest.json."""
    kind, loader, runtime_name = RUNTIMES[runtime]
    chromium.copy_runtime(kind, dest / "runtime")
    meta = {**meta, "preprocess": image_preprocess(meta.get("preprocess"))}
    # COMMON: what every loader shares, written into each model.js (a bundle's loader stays one file)
    common = (TEMPLATES / "common.js").read_text() + "\n" + (TEMPLATES / "image.js").read_text()
    values = {"META": json.dumps(meta), "COMMON": common,
              "TITLE": title, "MODEL_FILE": model_file, "RUNTIME": runtime_name,
              "SHAPE": ",".join(map(str, meta["inputShape"])), "DTYPE": meta["inputDtype"],
              "LAYOUT": meta["layout"], "FOLDER": dest.name}
    (dest / "model.js").write_text(_fill((TEMPLATES / loader).read_text(), values))
    for name in ("model.d.ts", "index.html", "README.md"):
        (dest / name).write_text(_fill((TEMPLATES / name).read_text(), values))
    out = np.asarray(expected, dtype=np.float64).ravel()
    given = ({n: a.ravel().tolist() for n, a in feeds.as_dict(example).items()} if feeds.is_packed(example)
             else np.asarray(example).ravel().tolist())  # several inputs: {name: values}, as predict() takes them
    (dest / "example.json").write_text(json.dumps({
        "input": given, "shape": meta["inputShape"], "dtype": meta["inputDtype"],
        "expected": out.tolist(), "expected_top1": int(out.argmax())}))
    # what the caller's facts do not say; write_manifest keeps it
    (dest / "manifest.json").write_text(json.dumps({"labels": meta.get("labels") or None,
                                                    "preprocess": meta["preprocess"]}, indent=2) + "\n")


def stats(dest: Path) -> dict[str, Any]:
    """Size, gzip size (level 9, file by file, as a server would send them) and the file list."""
    rows = file_rows(dest)
    return {"bundle_bytes": sum(r["bytes"] for r in rows), "bundle_gzip_bytes": sum(r["gzip_bytes"] for r in rows),
            "files": rows}


def write_manifest(dest: Path, facts: dict[str, Any]) -> dict[str, Any]:
    """(Re)write dest/manifest.json with `facts` and the bundle's files, keeping what it held and `facts` does
    not replace (write() records the labels and the preprocessing there); returns the stats."""
    path = dest / "manifest.json"
    held = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**held, **facts, **stats(dest)}, indent=2, default=str) + "\n")
    return stats(dest)


def model_mb(bundle: Path) -> float:
    """Megabytes of the bundle's model files (model.json + shards, or model.onnx)."""
    return sum(f.stat().st_size for f in (Path(bundle) / "model").rglob("*") if f.is_file()) / 1e6


def page_timeout_ms(mb: float, runs: int = 11) -> int:
    """The limit for index.html: loading a model of `mb` megabytes and running it `runs` times."""
    return int(LOAD_MS[0] + LOAD_MS[1] * mb + INFER_MS_PER_MB * mb * runs)


def _open(page: Any, url: str, mb: float) -> list[str]:
    """Open the bundle's index.html and wait until its example run finished (or failed)."""
    errors = chromium.page_errors(page)
    response = page.goto(url)
    if response is None or not response.ok:
        raise CompressError(f"{url} answered {response.status if response else 'nothing'}; is it a bundle folder?")
    limit = page_timeout_ms(mb)
    try:
        page.wait_for_function("document.body && document.body.dataset.done === '1'", timeout=limit)
    except Exception as e:  # noqa: BLE001 - playwright's TimeoutError
        why = "; ".join(errors) or str(e).splitlines()[0]
        raise ConverterError(f"the bundle page did not finish in {limit // 1000} s in Chromium (the limit for a "
                             f"{mb:.1f} MB model: {_limit_text()}; {why})") from None
    result = page.evaluate("window.result")
    if not result or "error" in result:
        why = (result or {}).get("error") or "; ".join(errors) or "no result"
        raise ConverterError(f"the bundle's index.html failed in Chromium: {why}")
    return errors


def _limit_text() -> str:
    return (f"{LOAD_MS[0] // 1000} s + {LOAD_MS[1] / 1000:g} s per MB to load, {INFER_MS_PER_MB / 1000:g} s per MB "
            "per inference")


def page_result(bundle: Path) -> dict[str, Any]:
    """Serve the bundle on 127.0.0.1, open index.html in Chromium, return what the page computed."""
    with chromium.serve(bundle) as url, chromium.chromium() as b:
        page = b.new_page()
        _open(page, url + "index.html", model_mb(bundle))
        return page.evaluate("window.result")


# Started, not awaited: Python polls window.__parity so that loading and running get their own limits.
RUN_ALL = """([n, specs]) => {
  const st = window.__parity = { stage: 'loading', done: 0 };
  (async () => {
    const t0 = performance.now();
    const m = await import('./bundle/model.js');
    st.info = await m.load();
    const buf = await (await fetch('inputs.bin')).arrayBuffer();  // over HTTP: no base64 through the driver
    // each input's values for every sample, one input after the other (4 bytes a value)
    const arrays = {};
    let offset = 0;
    for (const s of specs) {
      arrays[s.name] = s.dtype === 'float32' ? new Float32Array(buf, offset, n * s.size) : new Int32Array(buf, offset, n * s.size);
      offset += 4 * n * s.size;
    }
    const sample = (i) => specs.length === 1 && !specs[0].named
      ? arrays[specs[0].name].subarray(i * specs[0].size, (i + 1) * specs[0].size)
      : Object.fromEntries(specs.map((s) => [s.name, arrays[s.name].subarray(i * s.size, (i + 1) * s.size)]));
    const outs = [];
    for (let i = 0; i < n; i++) {
      const t1 = performance.now();
      const r = await m.predict(sample(i));
      if (r.outputs) {  // several outputs: every one, in the runtime's order, each sample's values together
        st.outNames = Object.keys(r.outputs);
        st.outSizes = st.outNames.map((k) => r.outputs[k].length);
        for (const k of st.outNames) outs.push(r.outputs[k]);
      } else outs.push(r.output);
      if (i === 0) Object.assign(st, { loadMs: t1 - t0, firstMs: performance.now() - t1, stage: 'running' });
      st.done = i + 1;
    }
    st.runMs = performance.now() - t0 - st.loadMs;
    const flat = new Float32Array(outs.reduce((a, o) => a + o.length, 0));
    let k = 0;
    for (const o of outs) { flat.set(o, k); k += o.length; }
    const u8 = new Uint8Array(flat.buffer);
    let s = '';
    for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
    st.out = btoa(s);
    st.stage = 'done';
  })().catch((e) => { st.error = String(e && e.message || e); st.stage = 'failed'; });
  return true;
}"""
STATE = "(({ out, ...rest }) => rest)(window.__parity)"  # all but the outputs


def run_inputs(bundle: Path, inputs: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Outputs of the bundle's model for every sample of `inputs`, computed in Chromium via model.js.

    The model loads once; the inputs reach the page as one binary file over the local server; the
    limits are LOAD_MS for loading (and the first input), then RUN_MS from the first inference's time.
    info gets the runtime's facts and the timings (load_ms, first_ms, run_ms: milliseconds in the page).
    """
    named = feeds.is_packed(inputs)
    arrays = {n: (a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) else a.astype(np.int32))
              for n, a in feeds.as_dict(inputs).items()}  # TF.js has no int64: token ids go as int32
    n = len(inputs)
    specs = [{"name": k, "dtype": "float32" if a.dtype == np.float32 else "int32", "size": int(a[0].size),
              "named": named} for k, a in arrays.items()]
    mb = model_mb(bundle)
    # a folder of its own beside the bundle (linked, not copied): the page, the bundle and the inputs
    # share one origin, and nothing is written into the bundle
    with tempfile.TemporaryDirectory(prefix="compress-parity-") as tmp:
        site = Path(tmp)
        (site / "bundle").symlink_to(Path(bundle).resolve(), target_is_directory=True)
        with open(site / "inputs.bin", "wb") as f:
            for a in arrays.values():
                np.ascontiguousarray(a).tofile(f)
        (site / "parity.html").write_text("<!doctype html><meta charset='utf-8'><link rel='icon' href='data:,'><title>parity</title>\n")
        with chromium.serve(site) as url, chromium.chromium() as b:
            page = b.new_page()
            errors = chromium.page_errors(page)
            page.goto(url + "parity.html")
            page.evaluate(RUN_ALL, [n, specs])
            load_limit = int(LOAD_MS[0] + LOAD_MS[1] * mb)
            st = _wait(page, "running", load_limit, errors,
                       f"loading the {mb:.1f} MB model and its first input did not finish in {load_limit // 1000} s "
                       f"in Chromium ({LOAD_MS[0] // 1000} s + {LOAD_MS[1] / 1000:g} s per MB)")
            run_limit = int(RUN_MS[0] + RUN_MS[1] * st.get("firstMs", 0) * n)
            _wait(page, "done", run_limit, errors,
                  f"{n} parity inputs did not finish in {run_limit // 1000} s in Chromium (the first took "
                  f"{st.get('firstMs', 0):.0f} ms; the limit is {RUN_MS[0] // 1000} s + {RUN_MS[1]}x that per input)")
            st = page.evaluate("window.__parity")
    out = np.frombuffer(base64.b64decode(st["out"]), dtype=np.float32).reshape(n, -1)
    if st.get("outNames"):  # several outputs: a field each, named by the runtime, flat per sample
        bounds = np.cumsum([0, *st["outSizes"]])
        out = feeds.pack({k: out[:, bounds[j]:bounds[j + 1]] for j, k in enumerate(st["outNames"])})
    info = {**st["info"], "load_ms": round(st["loadMs"], 1), "first_ms": round(st["firstMs"], 1),
            "run_ms": round(st["runMs"], 1)}
    return out, info


def _wait(page: Any, stage: str, limit_ms: int, errors: list[str], late: str) -> dict[str, Any]:
    """Wait until the parity run reached `stage` (or failed); the state without the outputs."""
    ready = "['done', 'failed']" if stage == "done" else "['running', 'done', 'failed']"
    try:
        page.wait_for_function(f"{ready}.includes(window.__parity.stage)", timeout=limit_ms, polling=250)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError
        done = page.evaluate("window.__parity.done")
        raise ConverterError(f"{late}; {done} of the inputs done" + (f" ({'; '.join(errors)})" if errors else "")) \
            from None
    st = page.evaluate(STATE)
    if st["stage"] == "failed":
        why = st.get("error") or "; ".join(errors) or "no result"
        raise ConverterError(f"the model failed in Chromium ({why})")
    return st
