"""Browser-ready bundles: a folder a web developer serves as it is, and the checks that run it in Chromium.

    <bundle>/model/            the model (TF.js graph model, or model.onnx)
    <bundle>/runtime/          runtime files copied from node_modules (compressor.chromium.copy_runtime)
    <bundle>/model.js, .d.ts   ES module load()/predict() and its TypeScript declaration
    <bundle>/index.html        runs example.json and shows the prediction and the latency
    <bundle>/example.json      one held-out input and PyTorch's output for it
    <bundle>/manifest.json     files, sizes, I/O, and (after the browser check) the parity figures
    <bundle>/README.md         how to use and serve it (COOP/COEP headers for threads)
The parity checks load the model through the bundle's own model.js, so what ships is what was checked.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

from compressor.core import chromium
from compressor.core.errors import CompressError, ConverterError
from compressor.core.files import file_rows

TEMPLATES = Path(__file__).parent / "templates"
RUNTIMES = {"tfjs": ("tfjs", "tfjs.js", "TensorFlow.js (wasm backend)"),
            "ort": ("ort", "ort.js", "onnxruntime-web (wasm)")}
PAGE_TIMEOUT_MS = 90_000


def _fill(text: str, values: dict[str, str]) -> str:
    for k, v in values.items():
        text = text.replace(f"__{k}__", v)
    return text


def write(dest: Path, *, runtime: str, meta: dict[str, Any], example: np.ndarray, expected: np.ndarray,
          title: str, model_file: str) -> None:
    """Write everything but the model (already in dest/model/) into the bundle folder `dest`."""
    kind, loader, runtime_name = RUNTIMES[runtime]
    chromium.copy_runtime(kind, dest / "runtime")
    # COMMON: what every loader shares, written into each model.js (a bundle's loader stays one file)
    values = {"META": json.dumps(meta), "COMMON": (TEMPLATES / "common.js").read_text(),
              "TITLE": title, "MODEL_FILE": model_file, "RUNTIME": runtime_name,
              "SHAPE": ",".join(map(str, meta["inputShape"])), "DTYPE": meta["inputDtype"],
              "LAYOUT": meta["layout"], "FOLDER": dest.name}
    (dest / "model.js").write_text(_fill((TEMPLATES / loader).read_text(), values))
    for name in ("model.d.ts", "index.html", "README.md"):
        (dest / name).write_text(_fill((TEMPLATES / name).read_text(), values))
    out = np.asarray(expected, dtype=np.float64).ravel()
    (dest / "example.json").write_text(json.dumps({
        "input": np.asarray(example).ravel().tolist(), "shape": meta["inputShape"], "dtype": meta["inputDtype"],
        "expected": out.tolist(), "expected_top1": int(out.argmax())}))


def stats(dest: Path) -> dict[str, Any]:
    """Size, gzip size (level 9, file by file, as a server would send them) and the file list."""
    rows = file_rows(dest)
    return {"bundle_bytes": sum(r["bytes"] for r in rows), "bundle_gzip_bytes": sum(r["gzip_bytes"] for r in rows),
            "files": rows}


def write_manifest(dest: Path, facts: dict[str, Any]) -> dict[str, Any]:
    """(Re)write dest/manifest.json with `facts` and the bundle's files; returns the stats."""
    (dest / "manifest.json").write_text(json.dumps({**facts, **stats(dest)}, indent=2, default=str) + "\n")
    return stats(dest)


def _open(page: Any, url: str) -> list[str]:
    """Open the bundle's index.html and wait until its example run finished (or failed)."""
    errors = chromium.page_errors(page)
    response = page.goto(url)
    if response is None or not response.ok:
        raise CompressError(f"{url} answered {response.status if response else 'nothing'}; is it a bundle folder?")
    try:
        page.wait_for_function("document.body && document.body.dataset.done === '1'", timeout=PAGE_TIMEOUT_MS)
    except Exception as e:  # noqa: BLE001 - playwright's TimeoutError
        why = "; ".join(errors) or str(e).splitlines()[0]
        raise ConverterError(f"the bundle page did not finish in {PAGE_TIMEOUT_MS // 1000} s in Chromium ({why})") \
            from None
    result = page.evaluate("window.result")
    if not result or "error" in result:
        why = (result or {}).get("error") or "; ".join(errors) or "no result"
        raise ConverterError(f"the bundle's index.html failed in Chromium: {why}")
    return errors


def page_result(bundle: Path) -> dict[str, Any]:
    """Serve the bundle on 127.0.0.1, open index.html in Chromium, return what the page computed."""
    with chromium.serve(bundle) as url, chromium.chromium() as b:
        page = b.new_page()
        _open(page, url + "index.html")
        return page.evaluate("window.result")


RUN_ALL = """async ([b64, dtype, n]) => {
  const m = await import('./model.js');
  const info = await m.load();
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const all = dtype === 'float32' ? new Float32Array(bytes.buffer) : new Int32Array(bytes.buffer);
  const size = all.length / n;
  const outs = [];
  for (let i = 0; i < n; i++) outs.push((await m.predict(all.subarray(i * size, (i + 1) * size))).output);
  const flat = new Float32Array(outs.reduce((a, o) => a + o.length, 0));
  let k = 0;
  for (const o of outs) { flat.set(o, k); k += o.length; }
  const u8 = new Uint8Array(flat.buffer);
  let s = '';
  for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
  return { out: btoa(s), info };
}"""


def run_inputs(bundle: Path, inputs: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Outputs of the bundle's model for every sample of `inputs`, computed in Chromium via model.js."""
    x = np.asarray(inputs)
    x = x.astype(np.float32) if np.issubdtype(x.dtype, np.floating) else x.astype(np.int32)
    dtype = "float32" if x.dtype == np.float32 else "int32"
    payload = base64.b64encode(np.ascontiguousarray(x).tobytes()).decode()
    with chromium.serve(bundle) as url, chromium.chromium() as b:
        page = b.new_page()
        errors = _open(page, url + "index.html")
        try:
            got = page.evaluate(RUN_ALL, [payload, dtype, len(x)])
        except Exception as e:  # noqa: BLE001 - playwright's Error: the page's exception text
            why = str(e).strip().splitlines()[0] if str(e).strip() else "; ".join(errors)
            raise ConverterError(f"the model failed in Chromium ({why})") from None
    out = np.frombuffer(base64.b64decode(got["out"]), dtype=np.float32).reshape(len(x), -1)
    return out, got["info"]
