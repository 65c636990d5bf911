"""Load a user's model from any of the four formats, safely, and learn its input shape.

Formats: TorchScript (torch.jit.save), a torch.export program (.pt2), a state_dict with
--arch package.module:ClassName, or a whole pickled nn.Module (only with --trust-model,
since unpickling runs code). A .pt2 archive holds pickles too (sample inputs, some weights):
without --trust-model they are read weights-only (tensors and plain containers) or refused (compressor/pt2.py).
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import pickle
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .core.errors import CompressError
from .data import physical_memory
from .pt2 import ExportedModule, PickleRefused, pickles_refused, program_meta

META_FILE = "compressor.json"  # extra file in TorchScript archives written by this tool


@dataclass
class LoadedModel:
    module: nn.Module
    input_shape: tuple[int, ...]  # batch first, batch 1
    input_dtype: torch.dtype
    num_outputs: int
    kind: str  # torchscript | torch-export | state_dict | pickle | python
    source: str
    sha256: str
    classes: tuple[str, ...] | None = None  # class names, when the file or module records them
    task: str = "logits"  # the output's kind (compressor.core.parity.KINDS): inferred from its shape
    output_shape: tuple[int, ...] = ()  # batch 1

    def example(self, batch: int = 1) -> torch.Tensor:
        shape = (batch, *self.input_shape[1:])
        return torch.zeros(shape, dtype=self.input_dtype)


def parse_input(text: str) -> tuple[str | None, tuple[int, ...], str | None]:
    """--input [NAME:]SHAPE[:DTYPE] ('input_ids:1x128:int64', '1x3x224x224') -> (name, shape, dtype)."""
    parts = text.split(":")
    if not 1 <= len(parts) <= 3:
        raise CompressError(f"--input {text!r}: write it as NAME:SHAPE:DTYPE, e.g. input_ids:1x128:int64")
    name = parts.pop(0) if len(parts) > 1 and not parts[0][:1].isdigit() else None
    shape = parse_shape(parts.pop(0))
    return name, shape, parts[0] if parts else None


def parse_shape(text: str) -> tuple[int, ...]:
    """'1,3,32,32' -> (1, 3, 32, 32); every dimension a positive integer."""
    try:
        dims = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        raise CompressError(f"--input-shape {text!r} is not a list of integers; write it like 1,3,32,32") from None
    if not dims or any(d <= 0 for d in dims):
        raise CompressError(f"--input-shape {text!r} must have positive dimensions; write it like 1,3,32,32")
    return dims


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def detect_format(path: Path) -> str:
    """torchscript | torch-export | torch-save (a pickle: state_dict or whole module)."""
    if not path.exists():
        raise CompressError(f"model file {path} not found; check the path")
    if path.is_dir():
        raise CompressError(f"{path} is a folder; give a model file (.pt, .pt2)")
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            bad = z.testzip()
    except zipfile.BadZipFile:
        raise CompressError(f"{path} is not a PyTorch model file (not a zip archive, or truncated); save it with "
                            "torch.jit.save, torch.export.save or torch.save(model.state_dict())") from None
    except OSError as e:
        raise CompressError(f"cannot read {path} ({e.strerror}); check its permissions") from None
    if bad is not None:
        raise CompressError(f"{path} is corrupted (entry {bad} fails its checksum); save the model again")
    if any(n.endswith("/archive_format") for n in names):
        return "torch-export"
    if any("/code/" in n for n in names) and any(n.endswith("/constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("/data.pkl") for n in names):
        return "torch-save"
    raise CompressError(f"{path} is a zip archive but not a PyTorch model; save it with torch.jit.save, "
                        "torch.export.save or torch.save(model.state_dict())")


def _import_arch(arch: str) -> type[nn.Module]:
    mod_name, _, attr = arch.partition(":")
    if not mod_name or not attr:
        raise CompressError(f"--arch {arch!r} must look like package.module:ClassName")
    try:
        mod = importlib.import_module(mod_name)  # only the module the user named
    except ImportError as e:
        raise CompressError(f"--arch: cannot import {mod_name!r} ({e}); check the name and PYTHONPATH") from None
    cls = getattr(mod, attr, None)
    if cls is None:
        raise CompressError(f"--arch: {mod_name} has no {attr!r}")
    return cls


def _from_state_dict(obj: object, arch: str | None, path: Path) -> nn.Module:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CompressError(f"{path} holds no state_dict (a dict of tensors); save one with "
                            "torch.save(model.state_dict(), path)")
    if arch is None:
        raise CompressError(f"{path} is a state_dict (weights only); pass --arch package.module:ClassName "
                            "naming the model class it belongs to")
    try:
        model = _import_arch(arch)()
    except CompressError:
        raise
    except Exception as e:  # noqa: BLE001 - user code
        raise CompressError(f"--arch {arch}() failed: {type(e).__name__}: {e}") from None
    try:
        model.load_state_dict(obj, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:300]
        raise CompressError(f"the state_dict in {path} does not fit --arch {arch}: {detail}") from None
    return model


def _load_torch_save(path: Path, arch: str | None, trust: bool) -> tuple[nn.Module, str]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        return _from_state_dict(obj, arch, path), "state_dict"
    except CompressError:
        raise
    except pickle.UnpicklingError:
        if not trust:
            raise CompressError(f"{path} is a pickled Python object, and unpickling runs code; pass --trust-model "
                                "only if you trust its source, or save a state_dict or TorchScript instead") from None
    except Exception as e:  # noqa: BLE001
        raise CompressError(f"{path} cannot be read ({type(e).__name__}); it may be truncated: save it again") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise CompressError(f"{path} cannot be unpickled ({type(e).__name__}: {e}); the classes it names must be "
                            "importable") from None
    if isinstance(obj, nn.Module):
        return obj, "pickle"
    return _from_state_dict(obj, arch, path), "state_dict"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch logs warnings (15-35 lines, with tracebacks) while it reads a damaged archive; the one-line error
    that follows says all the user needs."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _load_any(path: Path, fmt: str, arch: str | None, trust: bool) -> tuple[nn.Module, str, dict]:
    meta: dict = {}
    try:
        # an open file, not str(path): torch's C++ loaders cannot take a name that is not valid UTF-8
        with _quiet(), open(path, "rb") as f:
            if fmt == "torchscript":
                extra = {META_FILE: ""}
                module = torch.jit.load(f, map_location="cpu", _extra_files=extra)
                meta = json.loads(extra[META_FILE] or "{}")
                return module, "torchscript", meta
            if fmt == "torch-export":
                extra = {META_FILE: ""}
                with contextlib.nullcontext() if trust else pickles_refused():
                    ep = torch.export.load(f, extra_files=extra)
                meta = {**_clean_meta(json.loads(extra[META_FILE] or "{}")), **program_meta(ep, path)}
                return ExportedModule(ep.module(), meta.get("static_batch")), "torch-export", meta
    except CompressError:
        raise
    except PickleRefused:
        raise CompressError(f"{path} holds pickled Python objects besides tensors (in its sample inputs or "
                            "weights), and unpickling them runs code; pass --trust-model only if you trust its "
                            "source, or export the program again with torch.export.save") from None
    except OSError as e:
        raise CompressError(f"cannot read {path} ({e.strerror or type(e).__name__}); check its permissions"
                            ) from None
    except Exception as e:  # noqa: BLE001
        raise CompressError(f"{path} looks like a {fmt} archive but does not load ({type(e).__name__}); "
                            "it may be truncated or from another PyTorch version: save it again") from None
    module, kind = _load_torch_save(path, arch, trust)
    return module, kind, meta


def _dtype(name: str) -> torch.dtype:
    dt = getattr(torch, name, None)
    if not isinstance(dt, torch.dtype):
        raise CompressError(f"unknown input dtype {name!r}; use float32 or int64")
    return dt


def _clean_meta(raw: object) -> dict:
    """What this tool reads from a file's own metadata, checked: the file, not the tool, chose the values."""
    if not isinstance(raw, dict):
        return {}
    meta: dict = {}
    shape = raw.get("input_shape")
    if isinstance(shape, list) and 0 < len(shape) <= 8 and all(type(d) is int and d > 0 for d in shape):
        meta["input_shape"] = shape
    if isinstance(raw.get("input_dtype"), str):
        meta["input_dtype"] = raw["input_dtype"]
    classes = raw.get("classes")
    if isinstance(classes, (list, tuple)) and classes and all(isinstance(c, str) for c in classes):
        meta["classes"] = tuple(classes)
    if isinstance(raw.get("task"), str):
        meta["task"] = raw["task"]
    return meta


def _classes_of(module: nn.Module, meta: dict) -> tuple[str, ...] | None:
    names = meta.get("classes") or getattr(module, "classes", None)
    if isinstance(names, (list, tuple)) and names and all(isinstance(c, str) for c in names):
        return tuple(names)
    return None


def finish(module: nn.Module, *, kind: str, source: str, sha: str, meta: dict,
           input_shape: tuple[int, ...] | None,
           check_shape: Callable[[tuple[int, ...]], None] | None = None, task: str | None = None,
           input_dtype: str | None = None) -> LoadedModel:
    """Check weights, settle the input shape and dtype, and run one forward pass to prove they fit.

    `check_shape(shape)` runs before that forward pass: the data can refuse a shape (say 1,3,8192,8192)
    before the model spends minutes and gigabytes on it."""
    module.eval()
    meta = _clean_meta(meta)
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CompressError(f"weight {name} of {source} contains NaN or Inf; fix or retrain the model")
    given = input_dtype or meta.get("input_dtype")
    dtype = _dtype(given) if given else getattr(module, "input_dtype", torch.float32)
    shape = input_shape or meta.get("input_shape") or getattr(module, "input_shape", None)
    if shape is None:
        raise CompressError(f"cannot tell the input shape of {source}; pass --input-shape, e.g. 1,3,32,32")
    shape = (1, *tuple(int(d) for d in shape)[1:])
    if check_shape is not None:
        check_shape(shape)
    out = _probe(module, shape, dtype, source)
    task = infer_task(tuple(out.shape), task or meta.get("task") or getattr(module, "task", None))
    # classes: the logits' or the dense map's channels; an embedding's or a regression's values otherwise
    width = int(out.shape[1]) if task in ("logits", "dense") else int(out[0].numel())
    classes = _classes_of(module, meta)
    if classes is not None and len(classes) != width:
        classes = None  # names that do not match the outputs name nothing
    return LoadedModel(module, shape, dtype, width, kind, source, sha, classes, task, (1, *out.shape[1:]))


def infer_task(output_shape: tuple[int, ...], given: str | None = None) -> str:
    """The output's kind: given (recorded in the file, or --task), else by shape: (batch, classes) logits,
    (batch, classes, H, W) a dense map, anything else regression values (an embedding must be named)."""
    from .core.parity import KINDS

    if given is not None:
        if given not in KINDS:
            raise CompressError(f"unknown task {given!r}; choose one of: {', '.join(KINDS)}")
        return given
    return {2: "logits", 4: "dense"}.get(len(output_shape), "regression")


def _probe(module: nn.Module, shape: tuple[int, ...], dtype: torch.dtype, source: str) -> torch.Tensor:
    nbytes = torch.Size(shape).numel() * dtype.itemsize
    if nbytes > physical_memory() // 4:
        raise CompressError(f"one input of shape {tuple(shape)} takes {nbytes / 2**30:.1f} GiB, more than this "
                            "machine can run the model on; check --input-shape")
    x = torch.zeros(shape, dtype=dtype)
    try:
        with torch.no_grad():
            out = module(x)
    except Exception as e:  # noqa: BLE001 - user code
        # the last line is the cause; TorchScript puts its interpreter traceback before it
        msg = ([ln.strip() for ln in str(e).splitlines() if ln.strip()] or [""])[-1][:200]
        msg = msg.removeprefix(f"{type(e).__name__}: ")
        raise CompressError(f"{source} fails on an input of shape {tuple(shape)} ({type(e).__name__}: {msg}); "
                            "pass the right --input-shape, or --input NAME:SHAPE:DTYPE for integer inputs such as "
                            "input_ids:1x128:int64"
                            ) from None
    if isinstance(out, (tuple, list)):  # every later step (training, export, parity) takes one logits tensor
        raise CompressError(f"{source} returns a {type(out).__name__} of {len(out)} values; this tool compresses "
                            "classifiers that return one tensor of logits: wrap the model to return only those")
    if not isinstance(out, torch.Tensor):
        raise CompressError(f"{source} returns {type(out).__name__}, not a tensor; wrap it to return logits")
    if not torch.isfinite(out).all():
        raise CompressError(f"{source} outputs NaN or Inf on a zero input of shape {tuple(shape)}; fix the model")
    return out


def load_model(path: str | Path, *, arch: str | None = None, trust_model: bool = False,
               input_shape: tuple[int, ...] | None = None,
               check_shape: Callable[[tuple[int, ...]], None] | None = None, task: str | None = None,
               input_dtype: str | None = None) -> LoadedModel:
    """Load a model file in any supported format; errors are one-line CompressErrors."""
    path = Path(path)
    fmt = detect_format(path)
    module, kind, meta = _load_any(path, fmt, arch, trust_model)
    return finish(module, kind=kind, source=str(path), sha=sha256_of(path), meta=meta, input_shape=input_shape,
                  check_shape=check_shape, task=task, input_dtype=input_dtype)


def from_module(module: nn.Module, input_shape: tuple[int, ...] | None = None, name: str = "model",
                task: str | None = None) -> LoadedModel:
    """Wrap a model built in Python (the API's entry point, the demo, tests)."""
    return finish(module, kind="python", source=name, sha=module_hash(module), meta={}, input_shape=input_shape,
                  task=task)


def module_hash(module: nn.Module) -> str:
    """A module's identity for caches: its class name and every weight and buffer."""
    h = hashlib.sha256(type(module).__name__.encode())
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def save_torchscript(module: nn.Module, path: Path, input_shape: tuple[int, ...], input_dtype: str = "float32",
                     classes: tuple[str, ...] | None = None, task: str | None = None) -> None:
    """TorchScript with this tool's metadata, so that loading needs no --input-shape (and knows class names)."""
    module.eval()
    example = torch.zeros(input_shape, dtype=_dtype(input_dtype))
    try:
        scripted = torch.jit.script(module)
    except Exception:  # noqa: BLE001 - fall back to tracing for modules TorchScript cannot compile
        scripted = torch.jit.trace(module, example)
    meta = json.dumps({"input_shape": list(input_shape), "input_dtype": input_dtype}
                      | ({"classes": list(classes)} if classes else {}) | ({"task": task} if task else {}))
    with open(path, "wb") as f:  # a file, not str(path): torch's C++ writer cannot take a non-UTF-8 name
        torch.jit.save(scripted, f, _extra_files={META_FILE: meta})
