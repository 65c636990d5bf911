"""compressor.outputs under two real processes, interleaved at random and killed at random points.

Each process runs `staged(out, overwrite=True)` (lock, recovery, temporary folder, publish) once or
twice. Every file-system call in compressor.outputs that changes something (open, flock, replace,
unlink, rmtree, mkdtemp ...) first reports itself and waits for this test's word: go on, or be
killed (SIGKILL) right there. Hypothesis chooses which process moves at each point and where each
one is killed. Between any two moves the test checks that no two processes own the folder at once,
and that the output (the folder, or, mid-swap, the one copy moved aside, which the next run puts
back) is whole and is the one last published; at the end a further run finds it and leaves no litter.
"""
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from compressor.outputs import staged
from tests.conftest import ROOT

CHILD = textwrap.dedent("""
    import fcntl, json, os, pathlib, shutil, signal, sys, tempfile
    from compressor import outputs
    from compressor.core.errors import CompressError

    def step(label):
        print(label, flush=True)
        if sys.stdin.readline().strip() != "go":
            os.kill(os.getpid(), signal.SIGKILL)

    class Spy:
        def __init__(self, module, names):
            self._module, self._names = module, names

        def __getattr__(self, name):
            f = getattr(self._module, name)
            if name not in self._names:
                return f
            def call(*a, **k):
                step(" ".join([name, *(os.path.basename(x) for x in a[:2] if isinstance(x, (str, os.PathLike)))]))
                return f(*a, **k)
            return call

    outputs.os = Spy(os, {"open", "close", "replace", "rename", "unlink", "ftruncate", "pwrite", "chmod"})
    outputs.fcntl = Spy(fcntl, {"flock"})
    outputs.shutil = Spy(shutil, {"rmtree"})
    outputs.tempfile = Spy(tempfile, {"mkdtemp"})
    out, name, rounds = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    for r in range(rounds):
        step("start")
        try:
            with outputs.staged(out, overwrite=True) as tmp:
                step("own")
                (tmp / "manifest.json").write_text(json.dumps({"schema": 1, "artifacts": [], "tag": f"{name}{r}"}))
                step("half")
                (tmp / "b").write_text(f"{name}{r}")
                step("body done")
        except CompressError as e:
            print(e, file=sys.stderr)
    print("exit", flush=True)
""")


def write_output(folder: Path, tag: str) -> None:
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"schema": 1, "artifacts": [], "tag": tag}))
    (folder / "b").write_text(tag)


def tag_of(folder: Path) -> str:
    tag = json.loads((folder / "manifest.json").read_text())["tag"]
    assert (folder / "b").read_text() == tag, f"{folder} is half written"
    return tag


def current_output(root: Path) -> Path:
    """The output as the next run will find it: the folder, or the single copy moved aside mid-swap."""
    if (root / "out").exists():
        return root / "out"
    aside = [p for p in root.iterdir() if p.name.startswith(".out.old-")]
    assert len(aside) == 1, f"the output is lost: {sorted(p.name for p in root.iterdir())}"
    return aside[0]


class Child:
    def __init__(self, root: Path, name: str, rounds: int):
        self.name, self.round, self.moves = name, -1, 0
        self.p = subprocess.Popen([sys.executable, "-c", CHILD, str(root / "out"), name, str(rounds)], cwd=ROOT,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.label = ""
        self.read()

    def read(self) -> None:
        self.label = self.p.stdout.readline().strip()
        if self.label == "start":
            self.round += 1
        if self.label in ("exit", ""):
            self.finish()

    def send(self, word: str) -> None:
        self.p.stdin.write(word + "\n")
        self.p.stdin.flush()
        self.moves += 1
        if word == "go":
            self.read()
        else:
            self.finish()

    def finish(self) -> None:
        self.label = "gone"
        self.p.stdin.close()
        rc = self.p.wait(10)
        err = self.p.stderr.read()
        self.p.stdout.close()
        self.p.stderr.close()
        assert rc in (0, -9), err
        # the only refusal expected: the other process holds the lock
        assert all("another run" in line for line in err.splitlines()), err


# Two interleavings written out, each of which broke an earlier version of outputs.py:
# B opens the lock file just before A, finishing, removes it; B's flock then succeeds on the removed
# file, while A's second round creates and locks a new one (both own the folder without the inode check)
LOCK_FILE_REMOVED_UNDER_B = ["A"] * 13 + ["B"] * 2 + ["A"] * 2 + ["B"] + ["A"] * 7 + ["B"] * 12
# A is killed after moving the old output aside, before moving its own in: B must put the old one back
KILLED_MID_SWAP = ["A"] * 11 + ["B"] * 30


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(kill_a=st.none() | st.integers(0, 45), kill_b=st.none() | st.integers(0, 45),
       rounds_a=st.integers(1, 2), rounds_b=st.integers(1, 2), schedule=st.lists(st.sampled_from("AB"), max_size=120))
@example(kill_a=None, kill_b=None, rounds_a=2, rounds_b=1, schedule=LOCK_FILE_REMOVED_UNDER_B)
@example(kill_a=11, kill_b=None, rounds_a=1, rounds_b=1, schedule=KILLED_MID_SWAP)
def test_two_processes_never_both_own_the_folder_and_never_lose_the_output(kill_a, kill_b, rounds_a, rounds_b,
                                                                          schedule):
    """schedule: which process makes each move (when it is over, or names a finished process, the
    first live one moves); kill_*: the move at which that process is killed instead (None: never)."""
    kill_at, rounds = {"A": kill_a, "B": kill_b}, {"A": rounds_a, "B": rounds_b}
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        write_output(root / "out", "v0")
        children = {n: Child(root, n, rounds[n]) for n in "AB"}
        owners: set[str] = set()
        published = "v0"
        moves = iter(schedule)
        try:
            while live := sorted(n for n, c in children.items() if c.label != "gone"):
                name = next(moves, live[0])
                c = children[name if name in live else live[0]]
                label = c.label
                if c.moves == kill_at[c.name]:
                    c.send("kill")
                    owners.discard(c.name)
                else:
                    c.send("go")
                    if label.startswith("replace .out.tmp-"):  # the new output went in
                        published = f"{c.name}{c.round}"
                    if label == "unlink .out.lock" or c.label == "gone":
                        owners.discard(c.name)
                if c.label == "own":
                    owners.add(c.name)
                    assert len(owners) == 1, f"both own the folder: {owners}"
                assert tag_of(current_output(root)) == published
        finally:
            for c in children.values():
                if c.p.poll() is None:
                    c.p.kill()
                    c.p.wait()
        with staged(root / "out", overwrite=True) as tmp:  # the next run finds the last output, whole
            assert tag_of(root / "out") == published
            write_output(tmp / "x", "final")
        assert sorted(p.name for p in root.iterdir()) == ["out"]
