"""torch.export programs (.pt2): loaded without running the archive's pickles, read from their signature,
and run at any batch when they were exported with a fixed one."""
from __future__ import annotations

import contextlib
import pickle
import types
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import torch
from torch import nn

from .core.errors import CompressError


class ExportedModule(nn.Module):
    """A torch.export program as a module; its train/eval mode was fixed when it was exported.

    A program exported the default way (`torch.export.export(m, (x,))`) has a fixed batch (`static_batch`):
    other batches are run as chunks of that size (the last one padded), and exporters keep that batch."""

    def __init__(self, program_module: nn.Module, static_batch: int | None = None) -> None:
        super().__init__()
        self.program = program_module
        self.static_batch = static_batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.static_batch
        if b is None or x.shape[0] == b:
            return self.program(x)
        outs = []
        for i in range(0, x.shape[0], b):
            chunk = x[i:i + b]
            n = chunk.shape[0]
            if n < b:
                chunk = torch.cat([chunk, chunk.new_zeros((b - n, *chunk.shape[1:]))])
            outs.append(self.program(chunk)[:n])
        return torch.cat(outs)

    def train(self, mode: bool = True) -> ExportedModule:
        self.training = mode  # the program itself refuses train()/eval()
        return self


class PickleRefused(Exception):
    """A pickle in a .pt2 archive that holds more than tensors and plain containers (so it would run code)."""


@contextlib.contextmanager
def pickles_refused() -> Iterator[None]:
    """While active, torch.export.load cannot run code from the archive.

    It unpickles the sample inputs (and "use_pickle" weights and constants) and, when the safe weights-only
    load fails, falls back to a full pickle load: a crafted sample-inputs member then runs its own code.
    Here every torch.load is weights-only, and the plain-pickle and TorchBind loaders refuse outright.
    (torch.load is patched process-wide, so this runs only while the CLI is single-threaded: loading.)"""
    from torch.export.pt2_archive import _package

    real_load = torch.load

    def weights_only_load(f, map_location=None, pickle_module=None, *, weights_only=None, **kw):
        try:
            return real_load(f, map_location, weights_only=True, **kw)
        except pickle.UnpicklingError as e:
            if "Unsupported" in str(e) or "WeightsUnpickler" in str(e):  # a global or opcode that runs code
                raise PickleRefused(str(e)) from None
            raise

    def refuse(*_args: object, **_kw: object) -> None:
        raise PickleRefused("a pickled Python object")

    with mock.patch.object(torch, "load", weights_only_load), \
            mock.patch.object(_package, "pickle", types.SimpleNamespace(loads=refuse)), \
            mock.patch.object(torch._C, "_pickle_load_obj", refuse):
        yield


def program_meta(ep: torch.export.ExportedProgram, path: Path) -> dict:
    """Input shape and dtype from the program's signature (not from its pickled sample inputs)."""
    names = list(ep.graph_signature.user_inputs)
    if len(names) != 1:
        raise CompressError(f"{path} is a program with {len(names)} inputs; this tool compresses models that take "
                            "one input tensor: export a wrapper that takes one")
    node = next((n for n in ep.graph.nodes if n.op == "placeholder" and n.name == names[0]), None)
    val = node.meta.get("val") if node is not None else None
    if not isinstance(val, torch.Tensor):
        return {}
    meta: dict = {"input_dtype": str(val.dtype).removeprefix("torch.")}
    dims = [d if isinstance(d, int) else None for d in val.shape]  # a symbolic (dynamic) size is None
    if dims and all(d is not None for d in dims[1:]):
        meta["input_shape"] = [1, *dims[1:]]
    if dims and dims[0] is not None:  # torch.export.export(m, (x,)) fixes the batch unless told otherwise
        meta["static_batch"] = dims[0]
    return meta
