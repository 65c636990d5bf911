import os
import signal
import subprocess
import sys
import textwrap

import pytest

from compressor.core.errors import CompressError
from compressor.outputs import lock, staged


def test_published_only_on_success(tmp_path):
    out = tmp_path / "out"
    with staged(out) as tmp:
        (tmp / "a.txt").write_text("1")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temp folder, no lock left


def test_error_keeps_previous_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("half")
        raise RuntimeError("boom")
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_non_empty_needs_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    with pytest.raises(CompressError, match="--overwrite"), staged(tmp_path / "out"):
        pass


def test_read_only_parent(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(CompressError, match="cannot write"), staged(ro / "out"):
        pass


def test_second_run_is_refused_while_first_holds_the_lock(tmp_path):
    out = tmp_path / "out"
    with lock(out), pytest.raises(CompressError, match="another run"), staged(out):
        pass


def test_killed_run_leaves_previous_output_and_stale_lock_is_recovered(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    code = textwrap.dedent(f"""
        import time, pathlib
        from compressor.outputs import staged
        with staged(pathlib.Path({str(out)!r}), overwrite=True) as tmp:
            (tmp / "half.txt").write_text("x")
            print("ready", flush=True)
            time.sleep(60)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert sorted(x.name for x in out.iterdir()) == ["old.txt"]
    with staged(out, overwrite=True) as tmp:  # the dead run's lock and temp folder do not block us
        (tmp / "new.txt").write_text("new")
    assert sorted(x.name for x in out.iterdir()) == ["new.txt"]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out"]
