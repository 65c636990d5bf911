import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import textwrap

import pytest

from compressor.core.errors import CompressError
from compressor.outputs import check_target, lock, publish, staged
from compressor.runs import run_folder, sweep
from tests.conftest import run_cli


def previous_output(out, text="old"):
    """A folder as an earlier run of compress leaves it (its manifest is what --overwrite looks for)."""
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"schema": 1, "artifacts": []}))
    (out / "old.txt").write_text(text)


def test_published_only_on_success(tmp_path):
    out = tmp_path / "out"
    with staged(out) as tmp:
        (tmp / "a.txt").write_text("1")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temp folder, no lock left


def test_error_keeps_previous_output(tmp_path):
    out = tmp_path / "out"
    previous_output(out)
    with pytest.raises(RuntimeError), staged(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("half")
        raise RuntimeError("boom")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_non_empty_needs_overwrite(tmp_path):
    previous_output(tmp_path / "out")
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
    assert list(tmp_path.iterdir()) == []


def test_killed_run_leaves_previous_output_and_stale_lock_is_recovered(tmp_path):
    out = tmp_path / "out"
    previous_output(out)
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
    assert sorted(x.name for x in out.iterdir()) == ["manifest.json", "old.txt"]
    with staged(out, overwrite=True) as tmp:  # the dead run's lock and temp folder do not block us
        (tmp / "new.txt").write_text("new")
    assert sorted(x.name for x in out.iterdir()) == ["new.txt"]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out"]


# issue 13, case 4: an --out that cannot be published fails before any work, with nothing written

@pytest.mark.parametrize("given", [".", "..", "/", "", "./"])
def test_current_folder_or_above_is_refused(tmp_path, monkeypatch, given):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CompressError, match="--out"), staged(given, overwrite=True):
        pytest.fail("must not start")
    assert list(tmp_path.iterdir()) == []


def test_name_too_long_for_the_temporary_names_is_refused(tmp_path):
    with pytest.raises(CompressError, match="choose a shorter --out"), staged(tmp_path / ("a" * 240)):
        pytest.fail("must not start")
    assert list(tmp_path.iterdir()) == []
    with staged(tmp_path / ("a" * 200)) as tmp:  # within the limit: works
        (tmp / "x").write_text("x")
    assert [p.name for p in tmp_path.iterdir()] == ["a" * 200]


def test_path_too_long_is_refused(tmp_path):
    deep = tmp_path
    while len(str(deep)) < 3900:
        deep = deep / ("d" * 200)
    try:
        deep.mkdir(parents=True)
    except OSError:
        pytest.skip("this file system does not allow such a deep path")
    with pytest.raises(CompressError, match="--out path is"), staged(deep / "out"):
        pytest.fail("must not start")


@pytest.mark.parametrize("args", [["--out", "."], ["--out", ".", "--overwrite"], ["--out", "x" * 240]])
def test_cli_refuses_unpublishable_out_before_any_work(tmp_path, args):
    r = run_cli("demo", *args, cwd=tmp_path, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "--out" in lines[0], r.stderr
    assert list(tmp_path.iterdir()) == []


# issue 13, case 10: the lock is atomic; exactly one of many simultaneous runs gets it

def _try_lock(out, start, attempted, wins):
    start.wait()
    try:
        with lock(out):
            with wins.get_lock():
                wins.value += 1
            attempted.wait()  # hold it until every contender has tried
    except CompressError:
        attempted.wait()


@pytest.mark.parametrize("contenders", [2, 4])
def test_exactly_one_of_simultaneous_runs_gets_the_lock(tmp_path, contenders):
    ctx = multiprocessing.get_context("fork")
    out = tmp_path / "out"
    for _ in range(30):
        # the situation that was racy: a lock file left by a run killed earlier (a dead pid in it)
        (tmp_path / ".out.lock").write_text("999999999")
        start, attempted, wins = ctx.Barrier(contenders), ctx.Barrier(contenders), ctx.Value("i", 0)
        procs = [ctx.Process(target=_try_lock, args=(out, start, attempted, wins)) for _ in range(contenders)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
        assert wins.value == 1
        assert list(tmp_path.iterdir()) == []  # the winner removed the lock file


def test_a_lock_whose_holder_was_killed_is_free(tmp_path):
    out = tmp_path / "out"
    code = f"from compressor.outputs import lock\nwith lock({str(out)!r}):\n    print('held', flush=True)\n" \
           "    import time; time.sleep(60)"
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    with pytest.raises(CompressError, match=f"another run \\(pid {p.pid}\\)"), lock(out):
        pass
    p.kill()
    p.wait()
    with lock(out):  # the kernel released the dead run's lock: no pid to check
        pass
    assert list(tmp_path.iterdir()) == []


# issue 13, case 11: --overwrite never deletes an input, nor files compress did not write

def test_out_holding_an_input_is_refused(tmp_path):
    out = tmp_path / "out"
    previous_output(out)
    model = out / "model.pt"
    model.write_text("weights")
    with pytest.raises(CompressError, match="is or holds the input"), staged(out, True, inputs=[model]):
        pytest.fail("must not start")
    with pytest.raises(CompressError, match="is or holds the input"), staged(out, True, inputs=[out]):
        pytest.fail("must not start")
    data = tmp_path / "images"
    data.mkdir()
    with pytest.raises(CompressError, match="inside the input folder"), staged(data / "out", inputs=[data]):
        pytest.fail("must not start")
    assert model.read_text() == "weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "out"]


def test_overwrite_refuses_a_folder_compress_did_not_write_and_lists_it(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for i in range(8):
        (out / f"photo{i}.jpg").write_text("x")
    with pytest.raises(CompressError, match=r"did not write \(photo0.jpg, .*photo4.jpg and 3 more\)"):
        check_target(out, overwrite=True)
    (out / "manifest.json").write_text('{"not": "ours"}')  # a manifest.json of something else is not enough
    with pytest.raises(CompressError, match="did not write"), staged(out, overwrite=True):
        pytest.fail("must not start")
    assert len(list(out.iterdir())) == 9
    empty = tmp_path / "empty"
    empty.mkdir()
    with staged(empty) as tmp:  # an empty folder holds nothing to lose
        (tmp / "a").write_text("a")
    assert (empty / "a").exists()


def test_cli_refuses_out_holding_the_model(teacher_files, tmp_path):
    out = tmp_path / "out"
    previous_output(out)
    model = out / "teacher.pt"
    model.write_bytes(teacher_files["torchscript"].read_bytes())
    r = run_cli(model, "--out", out, "--overwrite")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "is or holds the input" in lines[0], r.stderr
    assert model.read_bytes() == teacher_files["torchscript"].read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# issue 13, case 12: an --out that is a symlink: the folder it points to is replaced, the link kept

def test_symlinked_out_is_replaced_where_it_points_and_leaves_nothing(tmp_path):
    real = tmp_path / "real_out"
    previous_output(real)
    link = tmp_path / "link_out"
    link.symlink_to(real)
    with staged(link, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert link.is_symlink() and link.resolve() == real
    assert sorted(p.name for p in link.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link_out", "real_out"]


# a run killed between the two renames of publish: the old output is put back, never lost

def test_interrupt_between_the_renames_puts_the_old_output_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    previous_output(out)
    real_replace = os.replace

    def replace(src, dst):
        real_replace(src, dst)
        if ".old-" in str(dst):
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt), staged(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    monkeypatch.setattr(os, "replace", real_replace)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_killed_mid_swap_the_next_run_restores_the_old_output(tmp_path):
    out = tmp_path / "out"
    previous_output(out, "previous")
    os.replace(out, tmp_path / ".out.old-999999")  # what a run killed between the two renames leaves
    (tmp_path / ".out.tmp-999999-abcdefgh").mkdir()
    with pytest.raises(CompressError, match="--overwrite"), staged(out):
        pass  # restored first, then judged: it is an earlier output, which needs --overwrite
    assert (out / "old.txt").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_publish_onto_nothing(tmp_path):
    (tmp_path / "t").mkdir()
    publish(tmp_path / "t", tmp_path / "out")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# issue 13, case 9: one run folder for all temporary files, swept when its run is dead

def test_run_folder_holds_the_run_temporary_files_and_is_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    with run_folder() as folder:
        assert folder.parent == tmp_path and folder.name.startswith(f"compress-run-{os.getpid()}-")
        assert os.environ["TMPDIR"] == str(folder) and tempfile.gettempdir() == str(folder)
        with run_folder() as inner:  # pipeline.run inside the CLI's: the same folder
            assert inner == folder
        tempfile.mkdtemp(prefix="compress-tf-")
        child = subprocess.run([sys.executable, "-c", "import tempfile; print(tempfile.mkdtemp())"],
                               capture_output=True, text=True, check=True).stdout.strip()
        assert child.startswith(str(folder) + "/")
    assert os.environ["TMPDIR"] == str(tmp_path) and tempfile.tempdir is None
    assert list(tmp_path.iterdir()) == []


def test_sweep_removes_dead_runs_folders_only(tmp_path):
    code = textwrap.dedent("""
        import time
        from compressor.runs import run_folder
        with run_folder() as f:
            (f / "compress-tf-x").mkdir()
            print(f, flush=True)
            time.sleep(60)
    """)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    folders = [p.stdout.readline().strip() for p in procs]
    try:
        procs[0].kill()  # SIGKILL: no clean-up
        procs[0].wait()
        dead = tmp_path / "compress-run-999999999-abcdefgh"  # killed before it locked its folder
        dead.mkdir()
        assert sorted(map(str, sweep(tmp_path))) == sorted([folders[0], str(dead)])
        assert [str(p) for p in tmp_path.iterdir()] == [folders[1]]  # the live run's folder stays
    finally:
        procs[1].kill()
        procs[1].wait()


@pytest.mark.parametrize("given", ["a\x00b", "x" * 300 + "/out"])
def test_unusable_out_is_one_line_error(tmp_path, monkeypatch, given):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CompressError, match="--out .* cannot be used"):
        check_target(given, overwrite=True)
