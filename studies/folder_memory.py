"""Peak memory of loading an image folder the way the pipeline does (issue 12: "a folder of 10,000 images at
224 px must not be loaded into memory at once"): `compressor.data.load(...)` then `split`, streamed into a
disk-backed array, against the in-memory path.

    .venv/bin/python -m studies.folder_memory [--n 10000] [--size 224] [--format jpeg] [--memory-n N] [--keep DIR]

Writes N synthetic images (smooth colour gradients plus noise, 10 class folders) with Pillow into a temporary
folder, then measures each path in a fresh process (peak RSS is per process): `stream` (the default: past
data.IN_MEMORY_BYTES the decoded inputs go to a numpy.memmap in the run's temporary folder) and `memory`
(the threshold raised so that everything stays in memory, as before). Per path: peak RSS (ru_maxrss) before
loading (imports) and after load + split, the anonymous and file-backed resident memory at the end
(/proc/self/status), seconds. The in-memory path peaks at about twice its inputs (the decoded images and their
stacked array, then the split copy): when 3x N x 3x224x224x4 bytes would pass 40% of the available memory, it
is measured at --memory-n images instead (default: the largest of N, N/2, N/4 ... under that), and the table
says so.

Measured (2 shared cores, 23 GB, ext4 on a virtual disk; JPEG, --preprocess imagenet; MiB):

| path | images | inputs | baseline | peak | added | load s | load+split s |
|---|---|---|---|---|---|---|---|
| stream | 10,000 | 5,742 | 124 | 195 | 71 | 46.7 | 73.8 |
| memory | 2,500 | 1,436 | 124 | 2,999 | 2,874 | 7.5 | 8.1 |
| memory | 600 | 345 | 124 | 815 | 691 | 2.8 | 4.7 |

The stream's peak is one 64 MB batch whatever N (191 MiB at 1,500 images too); the in-memory path's
grows at 2.0x its inputs, about 11.5 GB for the 10,000.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CLASSES = 10
IMAGE_BYTES = 3 * 4  # float32 per pixel and channel, 3 channels


def write_images(folder: Path, n: int, size: int, fmt: str) -> None:
    """n images of size x size in CLASSES class folders: smooth gradients (JPEG-like content) plus noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    for c in range(CLASSES):
        (folder / f"class{c}").mkdir(parents=True, exist_ok=True)
    suffix = {"jpeg": "jpg", "png": "png"}[fmt]
    for i in range(n):
        colour = rng.random(3, dtype=np.float32)
        a = ramp[:, None, None] * colour + ramp[None, :, None] * (1 - colour)
        a = np.clip(a * 200 + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(folder / f"class{i % CLASSES}" / f"{i:06}.{suffix}", quality=90)


def measure(folder: Path, size: int, mode: str) -> dict:
    """In this process: load + split as compressor/steps/load.py does, inside a run folder as a run is."""
    import sklearn.model_selection  # noqa: F401 - split's import, counted in the baseline, not in the load
    from PIL import Image  # noqa: F401

    from compressor import data, runs
    from compressor.preprocess import parse

    if mode == "memory":
        data.IN_MEMORY_BYTES = 1 << 62
    before = _peak()
    t0 = time.perf_counter()
    with runs.run_folder():
        d = data.load(str(folder), 3, num_classes=CLASSES, input_shape=(1, 3, size, size),
                      preprocess=parse("imagenet"))
        t_load = time.perf_counter() - t0
        splits = data.split(d, seed=0)
        seconds = time.perf_counter() - t0
        status = _status()
        sizes = [len(splits.train), len(splits.val), len(splits.test)]
        kind = type(splits.train.x).__name__
    return {"mode": mode, "n": len(d), "baseline_mib": before, "peak_mib": _peak(), "load_s": t_load,
            "total_s": seconds, "splits": sizes, "array": kind, "data_mib": d.x.nbytes / 2**20, **status}


def _peak() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _status() -> dict[str, float]:
    """Resident memory now: anonymous (the process's own) and file-backed (mapped files, reclaimable)."""
    got = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            got[key.lower() + "_mib"] = int(value.split()[0]) / 1024
    return got


def run_child(folder: Path, size: int, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "studies.folder_memory", "--measure", mode, "--folder", str(folder),
                          "--size", str(size)], check=False, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"the {mode} measurement failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def memory_n(n: int, size: int, given: int | None) -> int:
    """The in-memory path's size: given, else the largest of n, n/2, ... whose ~3 copies take under 40% of the
    available memory (the machine may be shared)."""
    if given:
        return given
    m = n
    while m > 100 and 3 * m * size * size * IMAGE_BYTES > 0.4 * available():
        m //= 2
    return m


def subset(folder: Path, m: int, dst: Path) -> Path:
    """The first m images of `folder` (round robin over classes), as symlinks: the same files, fewer."""
    files = sorted(folder.glob("class*/*"), key=lambda f: f.name)[:m]
    for f in files:
        (dst / f.parent.name).mkdir(parents=True, exist_ok=True)
        (dst / f.parent.name / f.name).symlink_to(f)
    return dst


def row(r: dict, note: str = "") -> str:
    return (f"| {r['mode']} | {r['n']:,} | {r['data_mib']:,.0f} | {r['array']} | {r['baseline_mib']:,.0f} | "
            f"{r['peak_mib']:,.0f} | {r['peak_mib'] - r['baseline_mib']:,.0f} | {r['rssanon_mib']:,.0f} | "
            f"{r['rssfile_mib']:,.0f} | {r['load_s']:.1f} | {r['total_s']:.1f} | {note} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--format", choices=("jpeg", "png"), default="jpeg")
    p.add_argument("--memory-n", type=int, help="images for the in-memory path (default: as many as fit, <= N)")
    p.add_argument("--keep", type=Path, help="write (or reuse) the images here instead of a temporary folder")
    p.add_argument("--measure", choices=("stream", "memory"), help=argparse.SUPPRESS)
    p.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.measure:
        print(json.dumps(measure(a.folder, a.size, a.measure)))
        return
    with tempfile.TemporaryDirectory(prefix="folder-memory-") as tmp:
        folder = a.keep or Path(tmp) / "images"
        if not any(folder.glob("class*/*")):
            t0 = time.perf_counter()
            write_images(folder, a.n, a.size, a.format)
            print(f"wrote {a.n:,} {a.format} images of {a.size} px in {time.perf_counter() - t0:.0f} s", flush=True)
        rows = [row(run_child(folder, a.size, "stream"))]
        m = memory_n(a.n, a.size, a.memory_n)
        small = folder if m >= a.n else subset(folder, m, Path(tmp) / f"first-{m}")
        rows.append(row(run_child(small, a.size, "memory"),
                        "" if m >= a.n else f"{m:,} of the {a.n:,}: 3 copies of all would pass 40% of available memory"))
    print(f"\n{os.cpu_count()} cores; MiB; peak = ru_maxrss; added = peak - baseline (imports); anon/file = "
          "resident at the end\n")
    print("| path | images | inputs MiB | array | baseline | peak | added | anon | file | load s | load+split s | note |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
