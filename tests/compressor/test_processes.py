"""Local servers and Chromium never outlive their run: not on success, not on error, not on Ctrl-C."""
import signal
import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from compressor.core.chromium import chromium, serve


def _port_open(url: str) -> bool:
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_server_binds_loopback_and_is_closed_on_error(tmp_path):
    with pytest.raises(RuntimeError), serve(tmp_path) as url:
        assert url.startswith("http://127.0.0.1:") and _port_open(url)
        raise RuntimeError("boom")
    assert not _port_open(url)


@pytest.mark.browser
def test_no_browser_process_left_after_an_error(tmp_path):
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    seen = set()
    with pytest.raises(RuntimeError), serve(tmp_path) as url, chromium() as browser:
        (tmp_path / "index.html").write_text("<p>hi</p>")
        page = browser.new_page()
        page.goto(url + "index.html")
        seen = {p.pid for p in me.children(recursive=True)} - before
        assert seen, "chromium should be running inside the block"
        raise RuntimeError("boom")
    time.sleep(0.5)
    alive = [pid for pid in seen if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert alive == []


@pytest.mark.browser
@pytest.mark.parametrize("lent", [False, True], ids=["own", "shared"])
def test_ctrl_c_closes_chromium_and_server(tmp_path, lent):
    code = textwrap.dedent(f"""
        import contextlib, time, pathlib, signal
        # a terminal's Ctrl-C even when the tests run as a background job, which starts with SIGINT ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from compressor.core.chromium import chromium, serve, shared
        root = pathlib.Path({str(tmp_path)!r})
        (root / "index.html").write_text("<p>hi</p>")
        with shared() if {lent} else contextlib.nullcontext(), serve(root) as url, chromium() as b:
            b.new_page().goto(url + "index.html")
            print(url, flush=True)
            time.sleep(120)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = p.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        kids = psutil.Process(p.pid).children(recursive=True)
        assert any("chrom" in k.name() for k in kids)
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    _, alive = psutil.wait_procs(kids, timeout=10)
    assert [k.pid for k in alive if k.status() != psutil.STATUS_ZOMBIE] == []
    assert not _port_open(url)
