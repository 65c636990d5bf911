"""Atomic output folders, and one temporary folder per run.

Everything is built in a temporary folder beside the target and renamed into place at the end. A
run killed at any point leaves the previous output where it was (or, killed mid-swap, moved aside:
the next run puts it back) and no half-written files in the target. An `flock` on a lock file beside
the target keeps two runs apart; the kernel releases it when its process dies, so a killed run never
blocks the next one, and since only the holder creates, swaps or removes the names derived from the
target, whatever the holder finds of them belongs to a dead run.

After a SIGTERM nothing is published (compressor/runs.py: the run's temporary folder and its end).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .core.errors import CompressError
from .runs import RANDOM, stop_if_terminated  # RANDOM: mkdtemp's random part of a name

SHOWN = 5  # names listed when refusing to replace a folder compress did not write


def target_path(out: str | Path) -> Path:
    """`out` resolved and checked so that it, and the names derived from it, can be created.

    Symlinks are followed: a linked output folder is replaced where it lives and the link kept.
    """
    try:
        return _target_path(out)
    except CompressError:
        raise
    except (OSError, ValueError) as e:  # a NUL byte, a folder name longer than the file system allows ...
        why = e.strerror if isinstance(e, OSError) else str(e)
        raise CompressError(f"--out {str(out)!r} cannot be used ({why}); choose another --out") from None


def _target_path(out: str | Path) -> Path:
    if not str(out).strip():
        raise CompressError("--out is empty; give the output folder to create, e.g. --out out")
    real = Path(out).resolve()
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:  # also `/`, whose name is empty
        raise CompressError(f"--out {out} is the current folder or holds it, and a run replaces its output folder "
                            "as a whole; give a folder to create, e.g. --out out")
    parent = real.parent
    if not parent.exists():
        raise CompressError(f"the folder {parent} does not exist; create it or choose another --out")
    if not parent.is_dir():
        raise CompressError(f"{parent} is not a folder; choose another --out")
    if not os.access(parent, os.W_OK):
        raise CompressError(f"cannot write in {parent} (read-only or no permission); choose another --out")
    # the longest name made beside the target: .NAME.tmp-PID-RANDOM (the lock and the old folder are shorter)
    extra = len("..tmp--") + max(len(str(os.getpid())), 7) + RANDOM  # 7: the largest pid Linux gives
    name_max, path_max = (_limit(parent, "PC_NAME_MAX", 255), _limit(parent, "PC_PATH_MAX", 4096))
    if len(os.fsencode(real.name)) + extra > name_max:
        raise CompressError(f"the --out name is {len(os.fsencode(real.name))} bytes long, and this file system "
                            f"allows {name_max - extra} (its temporary names add {extra}); choose a shorter --out")
    if len(os.fsencode(real)) + extra + name_max > path_max:  # room for one more name inside the output
        raise CompressError(f"the --out path is {len(os.fsencode(real))} bytes long, too long for its files "
                            f"(at most {path_max - extra - name_max}); choose a shorter --out")
    return real


def _limit(folder: Path, name: str, default: int) -> int:
    try:
        value = os.pathconf(folder, name)
    except (OSError, ValueError):
        return default
    return value if value > 0 else default  # -1: no limit


def check_target(out: str | Path, overwrite: bool, inputs: Iterable[str | Path] = ()) -> Path:
    """Fail early (before any work) when the target folder cannot be used; returns it resolved.

    inputs: files and folders the run reads; publishing replaces the target as a whole, so it must
    not be, nor hold, nor lie inside one of them.
    """
    real = target_path(out)
    for given in inputs:
        try:
            p = Path(given).resolve()
            if not p.exists():
                continue
        except (OSError, ValueError):
            continue  # not a usable path: the step that reads it says so
        if p == real or real in p.parents:
            raise CompressError(f"--out {out} is or holds the input {given}, which publishing the output would "
                                "delete; choose another --out")
        if p.is_dir() and p in real.parents:
            raise CompressError(f"--out {out} lies inside the input folder {given}; choose an --out outside it")
    if real.exists() and not real.is_dir():
        raise CompressError(f"output {out} exists and is not a folder; choose another --out")
    try:
        names = sorted(os.listdir(real)) if real.is_dir() else []
    except OSError as e:
        raise CompressError(f"cannot read the output folder {out} ({e.strerror}); choose another --out") from None
    if names and not written_by_us(real):
        shown = ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
        raise CompressError(f"output folder {out} holds files compress did not write ({shown}) and --overwrite "
                            "replaces only an earlier output of compress; move them away or choose another --out")
    if names and not overwrite:
        raise CompressError(f"output folder {out} exists and is not empty; pass --overwrite or choose another --out")
    return real


def written_by_us(folder: Path) -> bool:
    """Whether `folder` is an output of compress: it has a manifest.json as compressor.manifest writes it."""
    path = folder / "manifest.json"
    try:
        if path.stat().st_size > 64 << 20:  # not a manifest; and not worth reading
            return False
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(m, dict) and isinstance(m.get("schema"), int) and isinstance(m.get("artifacts"), list)


@contextlib.contextmanager
def lock(out: str | Path) -> Iterator[None]:
    """An exclusive lock beside `out`; a second run on the same folder stops with a clear message."""
    out = Path(out).resolve()
    path = out.parent / f".{out.name}.lock"
    fd = _acquire(path, out)
    try:
        yield
    finally:
        # removed while still held: a run that opened this file meanwhile sees it gone and retries
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def _acquire(path: Path, out: Path) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise CompressError(f"cannot create {path} ({e.strerror}); choose a writable --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                raise CompressError(f"another run (pid {pid}) is writing {out}; wait for it to finish or choose "
                                    "another --out") from None
            raise CompressError(f"cannot lock {path} ({e.strerror}); choose another --out") from None
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        mine = os.fstat(fd)
        if st is not None and (st.st_ino, st.st_dev) == (mine.st_ino, mine.st_dev):
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)  # for the other run's message
            return fd
        os.close(fd)  # the holder removed this file between our open and our flock: try the current one


def _derived(out: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(out.name)}\.(tmp-\d+-[a-z0-9_]{{{RANDOM}}}|old-\d+)")


def _recover(out: Path) -> None:
    """Under the lock: put back an output a killed run had moved aside, remove its temporary folders."""
    pattern = _derived(out)
    left = [p for p in out.parent.iterdir() if pattern.fullmatch(p.name)]
    old = [p for p in left if ".old-" in p.name]
    if old and not os.path.lexists(out):  # killed between moving the old output aside and the new one in
        back = max(old, key=lambda p: p.lstat().st_mtime)
        os.replace(back, out)
        left.remove(back)
    for p in left:
        _remove(p)


def _remove(p: Path) -> None:
    if p.is_symlink() or not p.is_dir():
        p.unlink(missing_ok=True)
    else:
        shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def staged(out: str | Path, overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Yield a temporary folder beside `out`; on success it replaces `out`, on any error it is removed."""
    inputs = tuple(inputs)
    real = check_target(out, overwrite, inputs)  # before the lock file: a refusal leaves nothing behind
    with lock(real):
        _recover(real)
        check_target(out, overwrite, inputs)  # again, on the folder as the lock holder sees it
        tmp = Path(tempfile.mkdtemp(prefix=f".{real.name}.tmp-{os.getpid()}-", dir=real.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide a served bundle from the web server
        try:
            yield tmp
            stop_if_terminated()
            publish(tmp, real)
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


def publish(tmp: Path, out: Path) -> None:
    """Swap `tmp` into place; the old folder is moved aside first so one of the two is always whole."""
    out = Path(out)
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    try:
        if os.path.lexists(out):
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:  # an error or an interrupt between the two renames: the old output goes back
        if not os.path.lexists(out) and os.path.lexists(old):
            os.replace(old, out)
        raise
    if os.path.lexists(old):
        _remove(old)
