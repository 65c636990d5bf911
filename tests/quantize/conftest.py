"""Fixtures for the quantization tests: the demo teacher, the digits splits, its float ONNX (made once)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def teacher():
    from compressor import demo

    return demo.teacher()


@pytest.fixture(scope="session")
def splits():
    from compressor import data

    return data.split(data.load_digits(), seed=0)


@pytest.fixture(scope="session")
def float_onnx(teacher, tmp_path_factory) -> Path:
    from compressor.quantize.core import float_onnx_of

    return float_onnx_of(teacher, tmp_path_factory.mktemp("float"))


@pytest.fixture(scope="session")
def reference(teacher, splits) -> np.ndarray:
    from compressor.evaluate import predict

    return predict(teacher.module, splits.test.x)
