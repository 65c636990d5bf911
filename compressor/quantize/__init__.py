"""Quantization: `quantize(model_or_artifact, config)` with one frozen config per method.

    from compressor.quantize import StaticInt8, quantize
    q = quantize(model, StaticInt8(calib_method="entropy"), splits=splits, workdir=out)
    q.artifact  # the int8 ONNX Artifact, with accuracy / drop / agreement on the held-out split

Heavy libraries (onnxruntime, torch.ao) are imported only when a quantizer runs.
"""
from __future__ import annotations

from typing import Any

from .config import MODES, QAT, DynamicInt8, Fp16, QuantConfig, StaticInt8, from_name

__all__ = ["MODES", "QAT", "DynamicInt8", "Fp16", "QuantConfig", "StaticInt8", "from_name", "quantize"]


def quantize(model_or_artifact: Any, config: QuantConfig, **kwargs: Any):
    """See compressor.quantize.core.quantize (imported here lazily)."""
    from .core import quantize as run

    return run(model_or_artifact, config, **kwargs)
