"""Where a result comes from: tool versions and the project's commit (manifests, bench.json)."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

TOOLS = ("torch", "numpy", "onnx", "onnxruntime", "onnxscript", "tensorflow", "ai-edge-litert", "onnx2tf",
         "torch-pruning", "edge-compress")
ROOT = Path(__file__).resolve().parents[2]  # the checkout when run from one


def tool_versions(names: tuple[str, ...] = TOOLS) -> dict[str, str]:
    """Python's version and each installed package's (packages not installed are left out)."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def commit() -> str:
    """The project's git commit (with -dirty when the tree has changes).

    Outside a checkout (an installed wheel, a container built without .git): COMPRESS_COMMIT, which the
    Dockerfile sets from its COMMIT build argument, else 'unknown'. Git is asked only about the checkout's
    own .git: a wheel installed in a virtualenv inside some other repository must not report that one's commit.
    """
    given = os.environ.get("COMPRESS_COMMIT") or "unknown"
    if not (ROOT / ".git").exists():
        return given
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=False).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return given
