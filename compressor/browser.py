"""`python -m compressor.browser FOLDER`: serve a bundle on 127.0.0.1 with COOP/COEP headers until Ctrl-C."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .core.chromium import serve
from .core.errors import CompressError


def main(argv: list[str] | None = None) -> int:
    """`python -m compressor.browser FOLDER`: serve a bundle on 127.0.0.1 with COOP/COEP until Ctrl-C."""
    p = argparse.ArgumentParser(prog="python -m compressor.browser",
                                description="Serve a bundle folder on 127.0.0.1 with COOP/COEP headers.")
    p.add_argument("folder", type=Path)
    folder = p.parse_args(argv).folder
    try:
        with serve(folder) as url:
            print(f"serving {folder} at {url}index.html (cross-origin isolated); Ctrl-C stops", flush=True)
            while True:
                time.sleep(3600)
    except CompressError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
