"""Headless-browser plumbing shared by the TF.js/ORT-web parity checks, bundles and browser benchmarks.

    serve(root)          a local HTTP server for a folder (127.0.0.1, free port, COOP/COEP headers)
    chromium()           Debian's chromium driven by Playwright (never a downloaded browser)
    shared()             a block in which every chromium() call reuses one launched browser
    copy_runtime(kind)   the browser runtime files a page needs, copied from the pinned npm packages
    home(), node_modules(), chromium_path()   where those assets are (COMPRESS_HOME, COMPRESS_CHROMIUM)

Nothing here touches the network beyond 127.0.0.1: runtimes come from node_modules, not a CDN.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import CompressError

ROOT = Path(__file__).resolve().parents[2]  # the checkout when run from one (else site-packages' parent)
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")

# Runtime files per kind, relative to node_modules. TF.js: the UMD builds plus every wasm variant the
# backend may pick (plain, SIMD, threaded SIMD). ORT: the wasm-only build, not ort.min.js, whose
# all-backend build pulls a 28 MB JSEP wasm and was slower (docs/exporters.md).
RUNTIMES: dict[str, tuple[str, ...]] = {
    "tfjs": (
        "@tensorflow/tfjs/dist/tf.min.js",
        "@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js",
        "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm",
        "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm",
        "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm",
    ),
    "ort": (
        "onnxruntime-web/dist/ort.wasm.min.js",
        "onnxruntime-web/dist/ort-wasm-simd-threaded.mjs",
        "onnxruntime-web/dist/ort-wasm-simd-threaded.wasm",
    ),
}


def home() -> Path:
    """The folder holding the runtime assets `node_modules/` and `.venv-tfjs/` (scripts/setup.sh makes them).

    COMPRESS_HOME when set; else the checkout when running from one; else ~/.local/share/edge-compress (an
    installed wheel, whose own folder is site-packages). Read at each call, so a test or a caller can set it.
    """
    if os.environ.get("COMPRESS_HOME"):
        return Path(os.environ["COMPRESS_HOME"]).expanduser().absolute()
    if (ROOT / "scripts" / "setup.sh").is_file() and (ROOT / "package-lock.json").is_file():
        return ROOT
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "edge-compress"


def node_modules() -> Path:
    """The pinned npm runtime packages (package-lock.json), installed by `scripts/setup.sh --browser`."""
    return home() / "node_modules"


def chromium_path() -> Path:
    """The Chromium binary Playwright drives: COMPRESS_CHROMIUM when set, else Debian's /usr/bin/chromium."""
    given = os.environ.get("COMPRESS_CHROMIUM")
    return Path(given).expanduser() if given else DEBIAN_CHROMIUM


def setup_hint() -> str:
    """How to create the assets: one phrase for error messages, naming the setting that moves them."""
    return (f"run `make setup` (a checkout) or `COMPRESS_HOME={home()} scripts/setup.sh --browser --assets-only` "
            "(an installed package; COMPRESS_HOME is the folder holding node_modules/ and .venv-tfjs/)")


MIME = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
        ".json": "application/json", ".bin": "application/octet-stream", ".html": "text/html",
        ".onnx": "application/octet-stream", ".tflite": "application/octet-stream", ".ts": "text/plain"}


class _Handler(http.server.SimpleHTTPRequestHandler):
    isolated = True
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME}  # noqa: RUF012

    def end_headers(self) -> None:
        if self.isolated:
            # Cross-origin isolation: SharedArrayBuffer (wasm threads) and a 5 us timer.
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: a page load is dozens of requests

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):
            pass  # the browser closed early (page navigated away or browser shut down)


@contextlib.contextmanager
def _sigint_to_main_thread() -> Iterator[None]:
    """Threads started inside inherit a signal mask without SIGINT and SIGTERM, so both reach the main thread.

    Python runs signal handlers in the main thread only; a SIGINT the kernel hands to a helper
    thread (the server's, asyncio's waitpid watcher) does not wake a main thread blocked in a sleep
    or a select, and Ctrl-C was seen to do nothing for the rest of that wait.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def serve(root: Path, *, isolated: bool = True) -> Iterator[str]:
    """Serve folder `root` on 127.0.0.1 (a free port); yields the base URL ending in '/'."""
    root = Path(root).resolve()  # the handler resolves paths per request: never relative to a later cwd
    if not root.is_dir():
        raise CompressError(f"cannot serve {root}: not a folder")
    handler = type("Handler", (_Handler,), {"isolated": isolated})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="compress-serve", daemon=True)
    with _sigint_to_main_thread():
        thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


_lent = threading.local()  # the browser of an open shared() block in this thread (Playwright's sync API is per thread)


@contextlib.contextmanager
def shared() -> Iterator[None]:
    """Inside this block, chromium() launches one browser on first use and lends it to every later call in
    this thread; it is closed when the block ends. The export step's TF.js, ORT-web and bundle checks share
    one launch instead of one each. A nested block uses the outer one's browser."""
    if getattr(_lent, "stack", None) is not None:
        yield
        return
    with contextlib.ExitStack() as stack:
        _lent.stack, _lent.browser = stack, None
        try:
            yield
        finally:
            _lent.stack = _lent.browser = None


@contextlib.contextmanager
def chromium(*, headless: bool = True) -> Iterator[Any]:
    """Debian's chromium under Playwright (sync API); yields a playwright Browser, always closed (inside
    shared(): the block's browser, whose pages this call opened are closed when it ends).

    Playwright's launch() gives every browser a fresh temporary profile (user-data-dir) and
    removes it on close, and every new_page() a fresh context, so no state leaks between runs or calls.
    """
    stack = getattr(_lent, "stack", None)
    if stack is None or not headless:
        with _launched(headless) as browser:
            yield browser
        return
    if _lent.browser is None:
        _lent.browser = stack.enter_context(_launched(True))
    browser = _lent.browser
    before = set(browser.contexts)
    interrupted = False
    try:
        yield browser
    except KeyboardInterrupt:
        interrupted = True  # no graceful close (it can hang): the shared() block ends the browser's processes
        raise
    finally:
        if not interrupted and browser.is_connected():
            for context in browser.contexts:
                if context not in before:
                    context.close()


@contextlib.contextmanager
def _launched(headless: bool) -> Iterator[Any]:
    exe = chromium_path()
    if not exe.is_file():
        raise CompressError(f"Chromium {exe} not found; set COMPRESS_CHROMIUM to a Chromium binary, or run "
                            "`make setup` (installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise CompressError("playwright is not installed; run `make setup`, or `pip install "
                            "'edge-compress[browser]'` for an installed package") from None
    import psutil

    flags = [f for f in CHROMIUM_FLAGS if headless or f != "--headless"]
    before = {c.pid for c in psutil.Process().children(recursive=True)}
    with contextlib.ExitStack() as stack:
        with _sigint_to_main_thread():  # the driver's waitpid thread is started here
            p = stack.enter_context(sync_playwright())
        try:
            browser = p.chromium.launch(executable_path=str(exe), headless=headless, args=flags)
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CompressError(f"could not start {exe} ({first}); set COMPRESS_CHROMIUM to a working Chromium, "
                                "or run `make setup`") from e
        ours = [c for c in psutil.Process().children(recursive=True) if c.pid not in before]
        try:
            yield browser
        except KeyboardInterrupt:
            # after an interrupt a graceful close can hang (playwright-python #1150): end the driver
            # and the browser processes this launch started, directly
            for c in ours:
                with contextlib.suppress(psutil.Error):
                    c.kill()
            psutil.wait_procs(ours, timeout=5)
            raise
        except BaseException:
            browser.close()
            raise
        else:
            browser.close()


def copy_runtime(kind: str, dest: Path) -> list[Path]:
    """Copy the runtime files of `kind` ('tfjs' or 'ort') into folder `dest`; returns the copies."""
    from .registry import check_choice

    check_choice("browser runtime", kind, tuple(RUNTIMES))
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    modules = node_modules()
    for rel in RUNTIMES[kind]:
        src = modules / rel
        if not src.is_file():
            raise CompressError(f"browser runtime file {src} is missing; {setup_hint()}")
        out.append(Path(shutil.copy2(src, dest / src.name)))
    return out


def page_errors(page: Any) -> list[str]:
    """Collect console errors and uncaught exceptions of a Playwright page (for error messages)."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors
