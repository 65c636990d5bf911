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
    other batches are run as chunks of that size (the last one padded), and exporters keep that batch.
    `in_names` are its inputs' names; `keyword_only` when it was exported with keyword arguments (a
    Hugging Face model called as m(input_ids=..., attention_mask=...)) and must be called so."""

    def __init__(self, program_module: nn.Module, static_batch: int | None = None,
                 in_names: list[str] | None = None, keyword_only: bool = False) -> None:
        super().__init__()
        self.program = program_module
        self.program.in_names = list(in_names or [])  # read by compressor.signature.forward_names
        self.program.keyword_only = keyword_only
        self.static_batch = static_batch

    def forward(self, *xs: torch.Tensor, **kw: torch.Tensor):
        names = list(kw)
        xs = (*xs, *kw.values())
        call = (lambda *t: self.program(**dict(zip(names, t)))) if names else self.program
        b = self.static_batch
        if b is None or xs[0].shape[0] == b:
            return call(*xs)
        from .core.signature import flatten

        parts: list[tuple[list[str], list[torch.Tensor]]] = []
        for i in range(0, xs[0].shape[0], b):
            chunk = [x[i:i + b] for x in xs]
            n = chunk[0].shape[0]
            if n < b:
                chunk = [torch.cat([c, c.new_zeros((b - n, *c.shape[1:]))]) for c in chunk]
            out_names, outs = flatten(call(*chunk))
            parts.append((out_names, [o[:n] for o in outs]))
        joined = [torch.cat([p[1][j] for p in parts]) for j in range(len(parts[0][1]))]
        return joined[0] if parts[0][0] == ["output"] else dict(zip(parts[0][0], joined))

    def train(self, mode: bool = True) -> ExportedModule:
        self.training = mode  # the program itself refuses train()/eval()
        return self


LIBRARIES = ("transformers.",)  # installed packages whose output classes (ModelOutput) programs may name


def register_output_types(path: Path) -> None:
    """A program that returns a Hugging Face `ModelOutput` names its class in the archive; torch can only
    rebuild that output once the class is registered, which importing its (installed) module does. Only
    modules of the libraries in LIBRARIES are imported, and only those that exist: nothing from the file runs."""
    import importlib
    import importlib.util
    import re
    import zipfile

    with zipfile.ZipFile(path) as z:
        text = " ".join(z.read(n).decode("utf-8", "replace") for n in z.namelist()
                        if n.endswith(".json") and z.getinfo(n).file_size < 64 << 20)
    pattern = r"\b(?:" + "|".join(re.escape(p) for p in LIBRARIES) + r")[\w.]+"
    modules = {m.rsplit(".", 1)[0] for m in re.findall(pattern, text)}
    for name in sorted(modules):
        try:
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
        except (ImportError, ValueError):  # a class name, not a module, or the library is missing
            continue


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
    """Every input's name, shape and dtype from the program's signature (not from its pickled sample inputs),
    whether it takes them by keyword, and its fixed batch if it has one."""
    names = list(ep.graph_signature.user_inputs)
    spec = ep.call_spec.in_spec
    keywords: list[str] = []
    if spec is not None and spec.num_children == 2 and spec.child(1).context:
        keywords = [str(k) for k in spec.child(1).context]
    placeholders = {n.name: n.meta.get("val") for n in ep.graph.nodes if n.op == "placeholder"}
    inputs, static = [], None
    for i, name in enumerate(names):
        val = placeholders.get(name)
        if not isinstance(val, torch.Tensor):
            raise CompressError(f"{path}: input {name!r} of the program is not a tensor; export a program whose "
                                "inputs are all tensors")
        dims = [d if isinstance(d, int) else None for d in val.shape]  # a symbolic (dynamic) size is None
        entry: dict = {"name": keywords[i] if len(keywords) == len(names) else name,
                       "dtype": str(val.dtype).removeprefix("torch.")}
        if dims and all(d is not None for d in dims[1:]):
            entry["shape"] = [1, *dims[1:]]
        if dims and dims[0] is not None:  # torch.export.export(m, (x,)) fixes the batch unless told otherwise
            static = dims[0]
        inputs.append(entry)
    if not inputs:
        raise CompressError(f"{path} is a program without inputs; export one that takes tensors")
    meta: dict = {"inputs": inputs, "keyword_only": len(keywords) == len(names),
                  "input_dtype": inputs[0]["dtype"]}
    if "shape" in inputs[0]:
        meta["input_shape"] = inputs[0]["shape"]
    if static is not None:
        meta["static_batch"] = static
    return meta
