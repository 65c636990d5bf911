"""Training checkpoints: last.pt (everything the next step depends on) and best.pt (the best weights)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..core.errors import CompressError
from . import distributed as dd


class Checkpoints:
    """last.pt (everything, every epoch and every --checkpoint-every steps) and best.pt (best weights) in one
    folder, written atomically."""

    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.folder, self.fingerprint = Path(folder), fingerprint

    def _write(self, obj: Any, name: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{name}.tmp-{os.getpid()}"
        torch.save(obj, tmp)
        os.replace(tmp, self.folder / name)  # a kill mid-write leaves the previous checkpoint whole

    def save(self, state: dict[str, Any]) -> None:
        """At the end of an epoch: last.pt and best.pt."""
        if dd.rank() == 0:
            self._write({**state, "fingerprint": self.fingerprint}, "last.pt")
            self._write(state["best_state"], "best.pt")
        dd.barrier()

    def save_step(self, state: dict[str, Any]) -> None:
        """Within an epoch: last.pt only (the best weights change at epoch ends, where `save` writes them)."""
        if dd.rank() == 0:
            self._write({**state, "fingerprint": self.fingerprint}, "last.pt")
        dd.barrier()

    def load(self) -> dict[str, Any] | None:
        path = self.folder / "last.pt"
        if not path.exists():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise CompressError(f"checkpoint {path} cannot be read ({type(e).__name__}); delete it to start "
                                "over") from None
        if state.get("fingerprint") != self.fingerprint:
            raise CompressError(f"checkpoint {path} belongs to a run with other options or inputs; resume with "
                                "the same command, or drop --resume to start over")
        return state

    def clear(self) -> None:
        if dd.rank() == 0:
            for name in ("last.pt", "best.pt"):
                (self.folder / name).unlink(missing_ok=True)
        dd.barrier()
