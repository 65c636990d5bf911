"""TF.js and onnxruntime-web in headless Debian Chromium (Playwright), one fresh page per measurement.

Pages and runtimes are served from 127.0.0.1 by compressor.core.chromium.serve (cross-origin isolated,
so wasm threads and the 5 us timer are available); nothing comes from a CDN. A device profile
sets viewport, user agent, touch and scale; CDP Emulation.setCPUThrottlingRate is sent before
the page loads, so the runtime's start-up is throttled too.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from compressor.core.files import artifact_files, onnx_external_data

from ..harness import Bounds
from ..platforms import DEVICES, Setting

WEB = Path(__file__).resolve().parent.parent / "web"


class Browser:
    """One Chromium and one local server for a whole bench run; `measure` opens a fresh page each time."""

    def __init__(self, root: Path, base: str, browser: Any, playwright_devices: dict[str, Any]) -> None:
        self.root, self.base, self.browser, self.devices = root, base, browser, playwright_devices
        self._models: dict[str, str] = {}

    def _publish(self, path: Path) -> str:
        """Copy an artifact under the served root once; returns its URL (model.json for TF.js)."""
        key = str(path.resolve())
        if key not in self._models:
            dest = self.root / "models" / str(len(self._models))
            if path.is_dir():
                shutil.copytree(path, dest)
                self._models[key] = f"models/{dest.name}/model.json"
            else:
                dest.mkdir(parents=True)
                for f in artifact_files(path):  # with ONNX external-data files beside it
                    shutil.copy2(f, dest / f.name)
                self._models[key] = f"models/{dest.name}/{path.name}"
        return self.base + self._models[key]

    def _external(self, path: Path) -> list[dict[str, str]]:
        """onnxruntime-web must be told about external-data files (it cannot open siblings itself)."""
        if path.suffix != ".onnx":
            return []
        url = self._publish(path).rsplit("/", 1)[0]
        return [{"path": f.name, "data": f"{url}/{f.name}"} for f in onnx_external_data(path)]

    def measure(self, setting: Setting, path: Path, input_shape: tuple[int, ...], input_dtype: str,
                bounds: Bounds, parity_inputs: np.ndarray | None, *, seed: int = 0,
                timeout_s: float = 300.0) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if setting.device:
            options = dict(self.devices[DEVICES.get(setting.device).playwright])
            options.pop("default_browser_type", None)
        ctx = self.browser.new_context(**options)
        try:
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            if setting.throttle and setting.throttle != 1:
                cdp = ctx.new_cdp_session(page)
                cdp.send("Emulation.setCPUThrottlingRate", {"rate": setting.throttle})
            page.set_default_timeout(timeout_s * 1000)
            page.goto(f"{self.base}bench.html?runtime={setting.runner}")
            cfg = {"runtime": setting.runner, "backend": setting.backend, "modelUrl": self._publish(path),
                   "inputShape": list(input_shape), "inputDtype": input_dtype, "bounds": asdict(bounds),
                   "seed": seed, "externalData": self._external(path),
                   "parityInputs": None if parity_inputs is None else parity_inputs.ravel().tolist()}
            try:
                res = page.evaluate("cfg => window.runBench(cfg)", cfg)
            except Exception as e:  # noqa: BLE001 - a page error is a row error, not a crash of the run
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                return {"error": (errors[-1] if errors else msg)[:300]}
            res["peak_js_heap_bytes"] = res.pop("js_heap_peak_bytes", None)
            res["runtime"] = (f"TF.js {res['detail'].get('tfjs')} {res['backend']}" if setting.runner == "tfjs"
                              else f"onnxruntime-web {res['detail'].get('ort') or ''} wasm").replace("  ", " ")
            res["threads"] = res["detail"].get("threads", 1)
            if setting.device:
                res["device"] = {"name": setting.device, "profile": DEVICES.get(setting.device).playwright,
                                 "cpu_throttle": setting.throttle}
            return res
        finally:
            ctx.close()


@contextlib.contextmanager
def session() -> Iterator[Browser]:
    """Start the server (runtimes + page) and Chromium for one bench run."""
    from playwright.sync_api import sync_playwright

    from compressor.core import chromium as plumbing

    with tempfile.TemporaryDirectory(prefix="compress-bench-web-") as tmp:
        root = Path(tmp)
        plumbing.copy_runtime("tfjs", root / "tfjs")
        plumbing.copy_runtime("ort", root / "ort")
        for f in ("bench.html", "bench.js"):
            shutil.copy2(WEB / f, root / f)
        with sync_playwright() as p:
            devices = dict(p.devices)
        with plumbing.serve(root, isolated=True) as base, plumbing.chromium() as b:
            yield Browser(root, base, b, devices)


def version() -> str:
    from importlib.metadata import version as v

    from compressor.core.chromium import chromium_path

    return f"playwright {v('playwright')}, {chromium_path()}"
