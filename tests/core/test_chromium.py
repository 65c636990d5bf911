"""compressor.core.chromium: local server headers, runtime copies, and a real page in Debian's chromium."""
from __future__ import annotations

import urllib.request

import pytest

from compressor.core import chromium
from compressor.core.errors import CompressError


def test_serve_sets_isolation_headers_and_wasm_mime(tmp_path):
    (tmp_path / "a.wasm").write_bytes(b"\0asm")
    (tmp_path / "m.mjs").write_text("export {}")
    with chromium.serve(tmp_path) as url:
        assert url.startswith("http://127.0.0.1:")
        r = urllib.request.urlopen(url + "a.wasm")
        assert r.headers["Content-Type"] == "application/wasm"
        assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        assert urllib.request.urlopen(url + "m.mjs").headers["Content-Type"] == "text/javascript"
    with chromium.serve(tmp_path, isolated=False) as url:
        assert urllib.request.urlopen(url + "a.wasm").headers["Cross-Origin-Opener-Policy"] is None
    with pytest.raises(OSError):  # shut down on exit
        urllib.request.urlopen(url + "a.wasm", timeout=2)


def test_serve_shuts_down_on_error(tmp_path):
    with pytest.raises(RuntimeError), chromium.serve(tmp_path) as url:
        raise RuntimeError("boom")
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


def test_copy_runtime_rejects_unknown_kind(tmp_path):
    with pytest.raises(CompressError, match="tfjs"):
        chromium.copy_runtime("webgpu", tmp_path)


@pytest.mark.browser
def test_copy_runtime_files_exist(tmp_path):
    tf = chromium.copy_runtime("tfjs", tmp_path / "tf")
    assert {p.name for p in tf} >= {"tf.min.js", "tf-backend-wasm.min.js", "tfjs-backend-wasm-simd.wasm"}
    ort = chromium.copy_runtime("ort", tmp_path / "ort")
    assert {p.name for p in ort} == {"ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"}
    assert all(p.stat().st_size > 1000 for p in tf + ort)


PAGE = """<!doctype html><link rel="icon" href="data:,"><script src="tf.min.js"></script>
<script src="tf-backend-wasm.min.js"></script><script>
window.result = (async () => {
  tf.wasm.setWasmPaths(new URL('.', location.href).href);
  await tf.setBackend('wasm');
  const y = await tf.tensor([1, 2, 3]).square().data();
  return {backend: tf.getBackend(), y: Array.from(y), isolated: self.crossOriginIsolated};
})();</script>"""


@pytest.mark.browser
def test_tfjs_wasm_runs_in_chromium_from_local_files(tmp_path):
    chromium.copy_runtime("tfjs", tmp_path)
    (tmp_path / "index.html").write_text(PAGE)
    with chromium.serve(tmp_path) as url, chromium.chromium() as b:
        page = b.new_page()
        errors = chromium.page_errors(page)
        requested = []
        page.on("request", lambda r: requested.append(r.url))
        page.goto(url + "index.html")
        out = page.evaluate("window.result")
    assert out == {"backend": "wasm", "y": [1, 4, 9], "isolated": True}, errors
    assert requested and all(u.startswith((url, "data:", f"blob:{url}")) for u in requested)


@pytest.mark.browser
def test_shared_lends_one_browser_and_closes_each_callers_pages(tmp_path):
    (tmp_path / "index.html").write_text("<p>hi</p>")
    with chromium.serve(tmp_path) as url, chromium.shared():
        with chromium.chromium() as first:
            first.new_page().goto(url + "index.html")
            assert len(first.contexts) == 1
        with chromium.chromium() as again:
            assert again is first and again.contexts == []  # the first caller's page is closed, not the browser
            with chromium.shared(), chromium.chromium() as nested:  # a nested block lends the outer browser
                assert nested is first
    assert not first.is_connected()  # closed when the block ends
    with chromium.chromium() as own:
        assert own is not first


def test_helper_threads_leave_sigint_to_the_main_thread():
    import signal
    import threading

    from compressor.core.chromium import _sigint_to_main_thread

    seen = {}

    def probe():
        seen["mask"] = signal.pthread_sigmask(signal.SIG_BLOCK, [])

    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with _sigint_to_main_thread():
        t = threading.Thread(target=probe)
        t.start()
    t.join()
    assert {signal.SIGINT, signal.SIGTERM} <= seen["mask"]  # the kernel will not hand Ctrl-C or SIGTERM to that thread
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before  # the main thread still takes it
