"""Run options as frozen dataclasses, shared by the CLI, the Python API and YAML recipes.

Validation happens in __post_init__ and raises CompressError (a ValueError) naming the
valid choices. `from_mapping` builds a config from plain data (a recipe): it never runs
code, and unknown keys are errors that list the known ones. compressor/recipe.py maps a
whole run's recipe (every CLI option) onto these configs.
"""
from __future__ import annotations

import dataclasses
import reprlib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

import exporters
from benchmarks.harness import PRESETS
from benchmarks.platforms import PlatformOptions, expand
from exporters.base import ExportOptions

from .core.checks import check_seed
from .core.errors import CompressError
from .core.registry import check_choice
from .distill.config import DistillConfig
from .preprocess import parse as parse_preprocess
from .quantize.config import QuantConfig, from_name

C = TypeVar("C")
MAX_DEPTH = 16  # a recipe is a few levels deep; far deeper data is a mistake (or an attack), refused early


INPUT_DTYPES = ("float32", "float16", "int64", "int32", "bool")
# --task: the output's kind, by the names users give it -> compressor.core.parity.KINDS
TASKS = {"classify": "logits", "dense": "dense", "embed": "embedding", "regress": "regression",
         "logits": "logits", "embedding": "embedding", "regression": "regression"}


@dataclass(frozen=True)
class RunConfig:
    model: str  # a model file, or "demo" for the built-in teacher
    targets: tuple[str, ...] = ("onnx",)
    out: str = "out"
    overwrite: bool = False
    data: str = "digits"
    arch: str | None = None
    trust_model: bool = False
    input_shape: tuple[int, ...] | None = None
    seed: int = 0
    parity_samples: int | None = None  # None: the whole held-out split
    export: ExportOptions = field(default_factory=ExportOptions)
    distill: DistillConfig | None = None  # None: export the model as given, no distillation
    bench: tuple[str, ...] = ()  # benchmark targets after export (cpu, mobile, browser); empty: no benchmark
    bench_bounds: str = "demo"  # benchmarks.harness.PRESETS name: quick, demo, default, thorough
    bench_device: str = "pixel-7"  # emulated phone of the mobile target
    # --quantize: StaticInt8 | DynamicInt8 | Fp16 | QAT (compressor.quantize); a name ("int8") is accepted too.
    # In a YAML recipe a mapping here means StaticInt8's fields.
    quantize: QuantConfig | None = None
    task: str | None = None  # the output's kind (TASKS); None: inferred from the model (its shape, its metadata)
    preprocess: str | None = None  # image folders: imagenet | mean=...,std=... | none (compressor/preprocess.py)
    labels: str | None = None  # a labels.txt (one class name a line) naming a classifier's outputs
    tokenizer: str | None = None  # a folder with the model's tokenizer.json, for text data
    input_dtype: str | None = None  # None: the model's (its metadata), else float32
    # --input NAME:SHAPE:DTYPE, one per input (a model with several inputs needs one each; the names are kept)
    inputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        exporters.expand(",".join(self.targets))
        if self.parity_samples is not None and self.parity_samples < 1:
            raise CompressError("--parity-samples must be at least 1")
        check_seed(self.seed)
        if self.input_shape is not None and (not self.input_shape or any(d < 1 for d in self.input_shape)):
            raise CompressError(f"--input-shape {self.input_shape} must be positive sizes, batch first, "
                                "e.g. 1,3,32,32")
        if isinstance(self.quantize, str):
            object.__setattr__(self, "quantize", from_name(self.quantize))
        if self.task is not None:  # one kind for every output, or one per output: "classify,regress"
            parts = [p.strip() for p in self.task.split(",")]
            for p in parts:
                check_choice("task", p, (*TASKS, "multi"))
            object.__setattr__(self, "task", ",".join(TASKS.get(p, p) for p in parts))
        if self.inputs:
            from .loading import parse_input

            named = [parse_input(t)[0] for t in self.inputs]
            if len(self.inputs) > 1 and (None in named or len(set(named)) != len(named)):
                raise CompressError("several --input need a distinct name each: --input input_ids:1x128:int64 "
                                    "--input attention_mask:1x128:int64")
        parse_preprocess(self.preprocess)  # a typo fails before any work
        if self.input_dtype is not None:
            check_choice("input dtype", self.input_dtype, INPUT_DTYPES)
        if self.bench:
            expand(self.bench, PlatformOptions(device=self.bench_device))
            check_choice("bench bounds preset", self.bench_bounds, tuple(PRESETS))

    def parity_count(self, available: int) -> int:
        """How many held-out samples the parity checks (and the accuracies beside them) use."""
        return available if self.parity_samples is None else min(self.parity_samples, available)


def from_mapping(cls: type[C], data: Any, where: str = "recipe") -> C:
    """Build dataclass `cls` from plain data (dicts, lists, scalars), checking every key."""
    if not isinstance(data, dict):
        raise CompressError(f"{where}: expected a mapping of options for {cls.__name__}, got {type(data).__name__}")
    check_depth(data, where)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise CompressError(f"{where}: unknown option(s) {', '.join(map(str, unknown))}; "
                            f"known: {', '.join(fields)}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, CompressError) as e:  # name the recipe: the option alone may read like a flag
        raise CompressError(f"{where}: {e}") from None


def check_depth(data: Any, where: str = "recipe", limit: int = MAX_DEPTH) -> None:
    """Refuse data nested deeper than `limit` (without recursing: a deep value must not blow the stack).

    Each container is expanded again only when reached at a deeper level, so YAML aliases that share
    one list many times over cost no more than the list itself; a cycle runs past the limit.
    """
    stack, seen = [(data, 1)], {}
    while stack:
        v, depth = stack.pop()
        if not isinstance(v, (dict, list, tuple)):
            continue
        if depth > limit:
            raise CompressError(f"{where} nests lists or mappings more than {limit} levels deep; a recipe is "
                                "flat options (see docs/distillation.md#recipes)")
        if seen.get(id(v), 0) >= depth:
            continue
        seen[id(v)] = depth
        stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))


def _short(value: Any) -> str:
    return reprlib.repr(value)  # bounded in length and depth, whatever the recipe holds


def convert(tp: Any, value: Any, where: str) -> Any:
    """Plain data (a recipe's value, or a flag's text) as type `tp`: "a,b" is a tuple too; errors name `where`."""
    return _convert(tp, value, where)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, where)
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, where)
    if origin is tuple:
        if isinstance(value, str):  # "onnx, tflite" as a flag types it; "" is the empty list, as --bench ""
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise CompressError(f"{where}: expected a list, got {type(value).__name__}")
        return tuple(_convert(args[0], v, where) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise CompressError(f"{where}: expected true or false, got {_short(value)}")
        return value
    if tp in (int, float, str):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise CompressError(f"{where}: expected {tp.__name__}, got {type(value).__name__}")
        if tp is int and isinstance(value, float) and not value.is_integer():  # int(2.5) would quietly be 2
            raise CompressError(f"{where}: expected a whole number, got {_short(value)}")
        try:
            return tp(value)
        except (ValueError, OverflowError):  # OverflowError: int() of an infinite float
            raise CompressError(f"{where}: expected {tp.__name__}, got {_short(value)}") from None
    return value
