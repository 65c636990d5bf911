"""Quantization settings as frozen dataclasses: one per method, validated on construction.

`quantize(model_or_artifact, config)` dispatches on the config's type. Every set of named
choices is checked with `check_choice`, so a typo names the valid choices. Nothing here
imports onnxruntime or torch: building a config is cheap and runs no code.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.checks import check_number, check_seed
from ..core.errors import CompressError
from ..core.registry import Registry, check_choice

CALIB_METHODS = ("minmax", "entropy", "percentile")
# activation/weight integer types; "auto" reads the CPU's flags (see cpu.py)
SCHEMES = ("auto", "u8s8", "u8u8", "s8s8")
# where a static int8 ONNX will run: the host CPU (scheme from its flags) or onnxruntime-web (wasm)
RUNTIMES = ("cpu", "web")


def _check_budget(max_accuracy_drop: float | None, min_agreement: float) -> None:
    if max_accuracy_drop is not None:
        check_number("max_accuracy_drop", max_accuracy_drop, 0,
                     hint="percentage points; 0 allows no drop, None skips the budget")
    check_number("min_agreement", min_agreement, 0, 1, hint="the fraction of top-1 predictions kept")


@dataclass(frozen=True)
class StaticInt8:
    """Static int8 (weights and activations) in QDQ format, calibrated on the user's data."""

    calib_method: str = "minmax"
    calib_samples: int = 200
    per_channel: bool = True
    scheme: str = "auto"  # auto: chosen from the CPU's flags (recorded in the manifest)
    reduce_range: bool | None = None  # None: chosen with the scheme
    runtime: str = "cpu"  # "web": the browser-safe variant for onnxruntime-web
    max_accuracy_drop: float | None = 1.0  # percentage points on the held-out split; None: no budget
    min_agreement: float = 0.99  # top-1 agreement with the float model
    fallback: bool = True  # try other settings when the budget is broken
    max_float_layers: int = 3  # at most this many sensitive layers kept in float by the fallback
    nodes_to_exclude: tuple[str, ...] = ()  # ONNX node names kept in float from the start

    def __post_init__(self) -> None:
        check_choice("calibration method", self.calib_method, CALIB_METHODS)
        check_choice("int8 scheme", self.scheme, SCHEMES)
        check_choice("int8 runtime", self.runtime, RUNTIMES)
        if self.calib_samples < 1:
            raise CompressError(f"calib_samples must be at least 1 (got {self.calib_samples})")
        if self.max_float_layers < 0:
            raise CompressError(f"max_float_layers must be >= 0 (got {self.max_float_layers})")
        _check_budget(self.max_accuracy_drop, self.min_agreement)


@dataclass(frozen=True)
class DynamicInt8:
    """Dynamic int8: int8 weights, activations quantized at run time (for Linear/LSTM-heavy models).

    Writes MatMulInteger/ConvInteger ops: ONNX Runtime CPU only, not onnxruntime-web.
    """

    per_channel: bool = False
    reduce_range: bool | None = None  # None: from the CPU's flags
    op_types: tuple[str, ...] = ("MatMul", "Gemm")  # Conv is slower dynamically than in float
    max_accuracy_drop: float | None = 1.0
    min_agreement: float = 0.99

    def __post_init__(self) -> None:
        for op in self.op_types:
            check_choice("dynamic int8 op type", op, ("MatMul", "Gemm", "Conv", "Attention", "LSTM", "GRU"))
        _check_budget(self.max_accuracy_drop, self.min_agreement)


@dataclass(frozen=True)
class Fp16:
    """float16 weights and activations, float32 inputs and outputs (keep_io_types)."""

    keep_io_types: bool = True
    max_accuracy_drop: float | None = 1.0
    min_agreement: float = 0.99

    def __post_init__(self) -> None:
        _check_budget(self.max_accuracy_drop, self.min_agreement)


@dataclass(frozen=True)
class QAT:
    """Quantization-aware fine-tuning of the (student) model, distillation loss kept on, then int8 ONNX."""

    epochs: int = 3
    lr: float = 1e-4
    batch: int = 64
    temperature: float = 4.0
    alpha: float = 0.5  # weight of the hard-label loss, 1 - alpha on distillation (as DistillConfig.alpha)
    freeze_bn_epoch: int = 1  # BatchNorm statistics frozen after this many epochs (standard QAT recipe)
    freeze_observer_epoch: int = 2  # activation ranges frozen after this many epochs
    max_accuracy_drop: float | None = 1.0
    # QAT retrains the weights, so it is judged on accuracy; agreement with the float model is recorded
    # (and gates at >= 0.95 only when the held-out data has no labels)
    min_agreement: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch < 1:
            raise CompressError("QAT needs epochs >= 1 and batch >= 1")
        if self.freeze_bn_epoch < 0 or self.freeze_observer_epoch < 0:
            raise CompressError("QAT freeze_bn_epoch and freeze_observer_epoch must be >= 0")
        # NaN and Inf pass plain comparisons and would fine-tune into NaN weights: refuse them here
        check_number("QAT lr", self.lr, 0, 1, low_open=True, hint="typical: 1e-5 to 1e-3")
        check_number("QAT temperature", self.temperature, 0, low_open=True, hint="typical: 2 to 8")
        check_number("QAT alpha", self.alpha, 0, 1, hint="the weight of the hard-label loss")
        check_seed(self.seed, "QAT seed")
        _check_budget(self.max_accuracy_drop, self.min_agreement)


QuantConfig = StaticInt8 | DynamicInt8 | Fp16 | QAT

# `--quantize NAME` -> config class (the CLI builds the config from the name and its flags)
MODES: Registry[type] = Registry("quantization")
MODES.add("int8", StaticInt8)
MODES.add("fp16", Fp16)
MODES.add("dynamic", DynamicInt8)
MODES.add("qat", QAT)


def from_name(name: str, *, calib_method: str | None = None, calib_samples: int | None = None,
              max_accuracy_drop: float | None = 1.0, min_agreement: float | None = None) -> QuantConfig:
    """The config for `--quantize NAME` and its flags (unknown names list the valid ones)."""
    cls = MODES.get(name)
    if calib_method is not None and cls is not StaticInt8:
        raise CompressError(f"--calib-method applies to --quantize int8 only (got --quantize {name})")
    kwargs: dict = {"max_accuracy_drop": max_accuracy_drop}
    if min_agreement is not None:
        kwargs["min_agreement"] = min_agreement
    if cls is StaticInt8:
        if calib_method is not None:
            kwargs["calib_method"] = calib_method
        if calib_samples is not None:
            kwargs["calib_samples"] = calib_samples
    return cls(**kwargs)
