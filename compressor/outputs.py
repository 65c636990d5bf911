"""Atomic output folders: build everything in a temporary folder beside the target, rename at the end.

A run killed at any point leaves the previous output as it was and no half-written
files in the target; a lock file beside the target keeps two runs apart.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .core.errors import CompressError


def check_target(out: Path, overwrite: bool) -> None:
    """Fail early (before any work) when the target folder cannot be used."""
    if out.exists() and not out.is_dir():
        raise CompressError(f"output {out} exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CompressError(f"output folder {out} exists and is not empty; pass --overwrite or choose another --out")
    parent = out.resolve().parent
    if not parent.exists():
        raise CompressError(f"the folder {parent} does not exist; create it or choose another --out")
    if not os.access(parent, os.W_OK):
        raise CompressError(f"cannot write in {parent} (read-only or no permission); choose another --out")


@contextlib.contextmanager
def lock(out: Path) -> Iterator[None]:
    """An exclusive lock file beside `out`; a second run on the same folder stops with a clear message."""
    path = out.resolve().parent / f".{out.resolve().name}.lock"
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        pid = _read_pid(path)
        if pid is not None and not _alive(pid):
            path.unlink(missing_ok=True)  # left by a run that was killed
            with lock(out):
                yield
            return
        raise CompressError(f"another run (pid {pid}) is writing {out}; wait for it, or remove {path} "
                            "if no run is active") from None
    except OSError as e:
        raise CompressError(f"cannot create {path} ({e.strerror}); choose a writable --out") from None
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        path.unlink(missing_ok=True)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or "x")
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def staged(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `out`; on success it replaces `out`, on any error it is removed."""
    out = Path(out)
    check_target(out, overwrite)
    with lock(out):
        parent = out.resolve().parent
        for stale in parent.glob(f".{out.name}.tmp-*"):
            if not _alive(_pid_of_tmp(stale)):
                shutil.rmtree(stale, ignore_errors=True)  # a run killed earlier
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide a served bundle from the web server
        try:
            yield tmp
            publish(tmp, out)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise CompressError(f"the disk is full while writing {out}; free space or choose another --out; "
                                    "the previous output is unchanged") from None
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise CompressError(f"cannot write {out} ({e.strerror}); choose a writable --out") from None
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _pid_of_tmp(path: Path) -> int:
    try:
        return int(path.name.split(".tmp-")[1].split("-")[0])
    except (IndexError, ValueError):
        return -1


def publish(tmp: Path, out: Path) -> None:
    """Swap `tmp` into place; the old folder is moved aside first so one of the two is always whole."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
