"""A run's life outside its output folder: one temporary folder for all of it, and its end on SIGTERM.

Every temporary file of a run (its own and its subprocesses', through TMPDIR) goes into one run folder
(`run_folder`), removed at the end, or by the next run when its owner was killed (`sweep`). SIGTERM
(docker stop, CI cancellation, timeout) ends a run as Ctrl-C does (`sigterm_as_interrupt`).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from .core.errors import CompressError

RANDOM = 8  # length of mkdtemp's random part, in the temporary folder's name
RUN_PREFIX = "compress-run-"
_run: list[Path] = []  # the run folder this process is inside, if any


@contextlib.contextmanager
def run_folder() -> Iterator[Path]:
    """One folder (TMPDIR/compress-run-PID-*) for every temporary file of this run, its subprocesses'
    included: `tempfile` and the TMPDIR variable point into it until the end, when it is removed. A
    folder whose run was killed is removed by the next run. Re-entrant: an inner call reuses it."""
    if _run:
        yield _run[-1]
        return
    saved = tempfile.tempdir, os.environ.get("TMPDIR")  # before gettempdir(), which caches into tempdir
    try:
        base = Path(tempfile.gettempdir())
        sweep(base)
        folder = Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-", dir=base))
    except OSError as e:
        raise CompressError(f"cannot create a temporary folder ({e}); set TMPDIR to a writable folder") from None
    held = _own(folder)
    tempfile.tempdir = os.environ["TMPDIR"] = str(folder)
    _run.append(folder)
    try:
        yield folder
    finally:
        _run.pop()
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[1]
        shutil.rmtree(folder, ignore_errors=True)
        os.close(held)


def _own(folder: Path) -> int:
    """Hold an flock on folder/.owner for as long as this process lives. The file is locked before it
    gets its name, so a sweep never sees it unlocked while its run is alive."""
    fd = os.open(folder / ".owner.new", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(folder / ".owner.new", folder / ".owner")
    return fd


def sweep(base: Path) -> list[Path]:
    """Remove the run folders in `base` whose run is dead; returns them."""
    pattern = re.compile(rf"{re.escape(RUN_PREFIX)}(\d+)-[a-z0-9_]{{{RANDOM}}}")
    gone = []
    for d in base.iterdir():
        m = pattern.fullmatch(d.name)
        if m and d.is_dir() and not d.is_symlink() and _dead(d, int(m.group(1))):
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d)
    return gone


def _dead(folder: Path, pid: int) -> bool:
    try:
        fd = os.open(folder / ".owner", os.O_RDONLY)
    except FileNotFoundError:  # killed before it locked its folder, or still starting: ask about its pid
        return not _alive(pid)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # its run holds it: alive
    finally:
        os.close(fd)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Terminated(KeyboardInterrupt):
    """SIGTERM (docker stop, CI cancellation, timeout), raised like Ctrl-C's KeyboardInterrupt so that
    every clean-up written for Ctrl-C (temporary folders, the lock, browsers, subprocesses) runs for it."""


_sigterms: list[int] = []  # SIGTERMs received inside sigterm_as_interrupt


@contextlib.contextmanager
def sigterm_as_interrupt(received: list[int]) -> Iterator[None]:
    """Inside the block SIGTERM raises Terminated, once (a second must not cut the clean-up short); the
    SIGTERMs are added to `received` at the end.

    An exception raised inside C code can come out as another one (pybind11 wraps it in ImportError,
    torch in RuntimeError) and then be swallowed by a broad `except`: so after a SIGTERM no step starts,
    no subprocess starts and nothing is published either (stop_if_terminated).
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def handler(signum: int, frame: object) -> None:
        _sigterms.append(signum)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated

    if not _hooked:
        sys.addaudithook(_no_new_process)
        _hooked.append(True)
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
        received.extend(_sigterms)
        _sigterms.clear()


def stop_if_terminated() -> None:
    """Raise Terminated if a SIGTERM came (the first Terminated may have been turned into something else)."""
    if _sigterms:
        raise Terminated


_hooked: list[bool] = []


def _no_new_process(event: str, args: tuple) -> None:
    if _sigterms and event in ("subprocess.Popen", "os.posix_spawn", "os.system", "os.fork"):
        raise Terminated
