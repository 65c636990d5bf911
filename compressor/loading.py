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

from .core.artifact import TensorSpec
from .core.errors import CompressError
from .core.files import sha256_of
from .core.signature import Flat, call_names, flatten, public_name
from .data import physical_memory
from .pt2 import ExportedModule, PickleRefused, pickles_refused, program_meta, register_output_types

META_FILE = "compressor.json"  # extra file in TorchScript archives written by this tool


@dataclass
class LoadedModel:
    module: nn.Module  # called with one tensor per input, in `inputs` order (compressor.core.signature.Flat)
    input_shape: tuple[int, ...]  # the first input's, batch first, batch 1
    input_dtype: torch.dtype
    num_outputs: int
    kind: str  # torchscript | torch-export | state_dict | pickle | python
    source: str
    sha256: str
    classes: tuple[str, ...] | None = None  # class names, when the file or module records them
    task: str = "logits"  # the output's kind (compressor.core.parity.KINDS), or "multi" for several outputs
    output_shape: tuple[int, ...] = ()  # the first output's, batch 1
    inputs: tuple[TensorSpec, ...] = ()  # every input, batch 1 (names as the artifacts keep them)
    outputs: tuple[TensorSpec, ...] = ()  # every output, batch 1
    kinds: tuple[str, ...] = ()  # each output's kind

    @property
    def multi(self) -> bool:
        """Several inputs or several outputs: their data are packed arrays (compressor/core/feeds.py)."""
        return len(self.inputs) > 1 or len(self.outputs) > 1

    def example(self, batch: int = 1) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Inputs of the right shapes and dtypes (zeros; ones for integer inputs: a valid token, a full mask)."""
        specs = self.inputs or (TensorSpec("input", self.input_shape, str(self.input_dtype).removeprefix("torch.")),)
        xs = tuple(_filled((batch, *s.shape[1:]), _dtype(s.dtype)) for s in specs)
        return xs[0] if len(xs) == 1 else xs


def _filled(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    return torch.zeros(shape, dtype=dtype) if dtype.is_floating_point else torch.ones(shape, dtype=dtype)


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
                register_output_types(path)
                extra = {META_FILE: ""}
                with contextlib.nullcontext() if trust else pickles_refused():
                    ep = torch.export.load(f, extra_files=extra)
                meta = {**_clean_meta(json.loads(extra[META_FILE] or "{}")), **program_meta(ep, path)}
                names = [i["name"] for i in meta["inputs"]]
                module = ExportedModule(ep.module(), meta.get("static_batch"), names, meta["keyword_only"])
                return module, "torch-export", meta
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
    inputs = raw.get("inputs")
    if isinstance(inputs, list) and 0 < len(inputs) <= 64 and all(_input_entry(i) for i in inputs):
        meta["inputs"] = inputs
    return meta


def _input_entry(entry: object) -> bool:
    """One recorded input: {"name": str, "dtype": str, "shape": [positive ints] (optional)}."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not isinstance(entry.get("dtype"), str):
        return False
    shape = entry.get("shape")
    return shape is None or (isinstance(shape, list) and 0 < len(shape) <= 8
                             and all(type(d) is int and d > 0 for d in shape))


def _classes_of(module: nn.Module, meta: dict) -> tuple[str, ...] | None:
    names = meta.get("classes") or getattr(module, "classes", None)
    if isinstance(names, (list, tuple)) and names and all(isinstance(c, str) for c in names):
        return tuple(names)
    return None


Given = tuple[str | None, tuple[int, ...] | None, str | None]  # one --input: (name, shape, dtype)


def _input_specs(module: nn.Module, meta: dict, source: str, input_shape: tuple[int, ...] | None,
                 input_dtype: str | None, given: list[Given] | None) -> list[Given]:
    """Each input's (name, shape, dtype): from --input (several), else --input-shape/--input's one input, else
    the file's metadata (a .pt2 program's signature, this tool's TorchScript metadata), else the module."""
    if given and len(given) > 1:
        return list(given)
    recorded = meta.get("inputs") or []
    if len(recorded) > 1 and not input_shape:
        return [(r["name"], tuple(r["shape"]) if r.get("shape") else None, r["dtype"]) for r in recorded]
    if len(recorded) > 1:
        raise CompressError(f"{source} takes {len(recorded)} inputs ({', '.join(r['name'] for r in recorded)}); "
                            "give each with --input NAME:SHAPE:DTYPE instead of --input-shape")
    name = given[0][0] if given else (recorded[0]["name"] if recorded else None)
    shape = input_shape or meta.get("input_shape") or getattr(module, "input_shape", None)
    dtype = input_dtype or meta.get("input_dtype")
    return [(name, tuple(int(d) for d in shape) if shape else None, dtype)]


def finish(module: nn.Module, *, kind: str, source: str, sha: str, meta: dict,
           input_shape: tuple[int, ...] | None,
           check_shape: Callable[[tuple[int, ...]], None] | None = None, task: str | None = None,
           input_dtype: str | None = None, inputs: list[Given] | None = None,
           from_data: tuple[tuple[int, ...], str] | None = None) -> LoadedModel:
    """Check weights, settle every input's name, shape and dtype, and run one forward pass to prove they fit
    and to learn the outputs.

    `check_shape(shape)` runs before that forward pass: the data can refuse a shape (say 1,3,8192,8192)
    before the model spends minutes and gigabytes on it. `task`: one output kind for every output, or one
    per output separated by commas."""
    module.eval()
    meta = {**_clean_meta(meta), **{k: meta[k] for k in ("inputs",) if k in meta}}
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CompressError(f"weight {name} of {source} contains NaN or Inf; fix or retrain the model")
    given = _input_specs(module, meta, source, input_shape, input_dtype, inputs)
    if len(given) == 1 and given[0][1] is None and from_data is not None:  # the model does not say: the data does
        given = [(given[0][0], from_data[0], given[0][2] or from_data[1])]
    missing = [n or f"input {i}" for i, (n, shape, _) in enumerate(given) if shape is None]
    if missing:
        what = "--input-shape, e.g. 1,3,32,32" if len(given) == 1 else "--input NAME:SHAPE:DTYPE for each input"
        raise CompressError(f"cannot tell the shape of {', '.join(missing)} of {source}; pass {what}")
    names, by_name = call_names(module, [n or "" for n, _, _ in given])
    default_dtype = str(getattr(module, "input_dtype", torch.float32)).removeprefix("torch.")
    specs = tuple(TensorSpec(public_name(n) if len(given) == 1 else n, (1, *shape[1:]), d or default_dtype)
                  for n, (_, shape, d) in zip(names, given))
    for sp in specs:
        _dtype(sp.dtype)  # an unknown dtype name fails here, in one line
    if check_shape is not None and len(specs) == 1:
        check_shape(specs[0].shape)
    out_names, outs = _probe(module, names, specs, by_name, source)
    if len(specs) > 1 or out_names != ["output"]:
        module = Flat(module, names, by_name)
        module.output_names = out_names
    kinds = _kinds(outs, task or meta.get("task") or getattr(module, "task", None), out_names)
    outputs = tuple(TensorSpec(n, (1, *o.shape[1:]), str(o.dtype).removeprefix("torch.")) for n, o in zip(out_names, outs))
    out = outs[0]
    # classes: the logits' or the dense map's channels; an embedding's or a regression's values otherwise
    width = int(out.shape[1]) if kinds[0] in ("logits", "dense") and out.dim() > 1 else int(out[0].numel())
    classes = _classes_of(module, meta) if len(outs) == 1 else None
    if classes is not None and len(classes) != width:
        classes = None  # names that do not match the outputs name nothing
    return LoadedModel(module, specs[0].shape, _dtype(specs[0].dtype), width, kind, source, sha, classes,
                       kinds[0] if len(kinds) == 1 else "multi", (1, *out.shape[1:]), specs, outputs, kinds)


def _kinds(outs: list[torch.Tensor], given: str | None, names: list[str]) -> tuple[str, ...]:
    """Each output's kind: one given kind for all, one per output ("logits,regression"), else by shape."""
    parts = [p.strip() for p in given.split(",")] if given and given != "multi" else []
    if len(parts) > 1 and len(parts) != len(outs):
        raise CompressError(f"--task names {len(parts)} kinds but the model has {len(outs)} outputs "
                            f"({', '.join(names)}); give one kind, or one per output")
    if len(parts) == 1:
        parts = parts * len(outs)
    return tuple(infer_task(tuple(o.shape), parts[i] if parts else None) for i, o in enumerate(outs))


def infer_task(output_shape: tuple[int, ...], given: str | None = None) -> str:
    """The output's kind: given (recorded in the file, or --task), else by shape: (batch, classes) logits,
    (batch, classes, H, W) a dense map, anything else regression values (an embedding must be named)."""
    from .core.parity import KINDS

    if given is not None:
        if given not in KINDS:
            raise CompressError(f"unknown task {given!r}; choose one of: {', '.join(KINDS)}")
        return given
    return {2: "logits", 4: "dense"}.get(len(output_shape), "regression")


def _probe(module: nn.Module, names: list[str], specs: tuple[TensorSpec, ...], by_name: bool,
           source: str) -> tuple[list[str], list[torch.Tensor]]:
    nbytes = sum(torch.Size(sp.shape).numel() * _dtype(sp.dtype).itemsize for sp in specs)
    shapes = ", ".join(f"{sp.name} {tuple(sp.shape)}" for sp in specs) if len(specs) > 1 else str(tuple(specs[0].shape))
    if nbytes > physical_memory() // 4:
        raise CompressError(f"one input of shape {shapes} takes {nbytes / 2**30:.1f} GiB, more than this "
                            "machine can run the model on; check --input-shape")
    xs = [_filled(sp.shape, _dtype(sp.dtype)) for sp in specs]
    try:
        with torch.no_grad():
            out = module(**dict(zip(names, xs))) if by_name else module(*xs)
    except Exception as e:  # noqa: BLE001 - user code
        # the last line is the cause; TorchScript puts its interpreter traceback before it
        msg = ([ln.strip() for ln in str(e).splitlines() if ln.strip()] or [""])[-1][:200]
        msg = msg.removeprefix(f"{type(e).__name__}: ")
        what = "an input" if len(specs) == 1 else "inputs"
        raise CompressError(f"{source} fails on {what} of shape {shapes} ({type(e).__name__}: {msg}); "
                            "pass the right --input-shape, or --input NAME:SHAPE:DTYPE for each input (integer "
                            "inputs such as input_ids:1x128:int64)"
                            ) from None
    try:
        out_names, outs = flatten(out)
    except CompressError as e:
        raise CompressError(f"{source}: {e}") from None
    for n, o in zip(out_names, outs):
        if o.is_floating_point() and not torch.isfinite(o).all():
            raise CompressError(f"{source} outputs NaN or Inf ({n}) on a zero input of shape {shapes}; fix the model")
        if o.dim() == 0:
            raise CompressError(f"{source}'s output {n!r} is a scalar; outputs must keep the batch dimension")
    return out_names, [o if o.is_floating_point() else o.float() for o in outs]


def load_model(path: str | Path, *, arch: str | None = None, trust_model: bool = False,
               input_shape: tuple[int, ...] | None = None,
               check_shape: Callable[[tuple[int, ...]], None] | None = None, task: str | None = None,
               input_dtype: str | None = None, inputs: list[Given] | None = None,
               from_data: tuple[tuple[int, ...], str] | None = None) -> LoadedModel:
    """Load a model file in any supported format; errors are one-line CompressErrors. `from_data`: the input
    the data implies (shape, dtype), used only when neither the options nor the file say it."""
    path = Path(path)
    fmt = detect_format(path)
    module, kind, meta = _load_any(path, fmt, arch, trust_model)
    return finish(module, kind=kind, source=str(path), sha=sha256_of(path), meta=meta, input_shape=input_shape,
                  check_shape=check_shape, task=task, input_dtype=input_dtype, inputs=inputs, from_data=from_data)


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
