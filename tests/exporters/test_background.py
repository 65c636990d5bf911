"""Converters started in the background: collected with their log, bounded by their timeout, never left running."""
import sys

import pytest

from compressor.core.errors import ConverterError
from exporters import background


def test_a_finished_converter_gives_its_status_and_log(tmp_path):
    job = background.start([sys.executable, "-c", "print('converted'); raise SystemExit(3)"], log=tmp_path / "log",
                           timeout=60, what="converter")
    assert background.finish(job) == (3, "converted\n")


def test_a_converter_over_its_timeout_is_killed_with_a_one_line_error(tmp_path):
    job = background.start([sys.executable, "-c", "import time; time.sleep(60)"], log=tmp_path / "log", timeout=0.5,
                           what="slowconv")
    with pytest.raises(ConverterError, match=r"^slowconv took more than 0 s"):
        background.finish(job)
    assert job.proc.poll() is not None


def test_stop_all_ends_what_a_failed_run_left_running(tmp_path):
    pending = {name: background.start([sys.executable, "-c", "import time; time.sleep(60)"], log=tmp_path / name,
                                      timeout=60, what=name) for name in ("onnx2tf", "tfjs")}
    procs = [j.proc for j in pending.values()]
    background.stop_all(pending)
    assert not pending and all(p.poll() is not None for p in procs)
