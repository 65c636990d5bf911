"""compressor.core.parity: one table of rules, and what agreement means for each kind of output."""
from __future__ import annotations

import numpy as np
import pytest

from compressor.core import parity
from compressor.core.errors import CompressError, ParityError


def test_rules_come_from_one_table_with_wildcards_and_kinds():
    assert parity.rule("tflite", "float16") == parity.RULES[("tflite", "float16", "logits")]
    assert parity.rule("onnx", "something-new") == parity.RULES[("onnx", "*", "logits")]
    assert parity.rule("tflite", "float32", "dense") == parity.rule("tflite", "float32")  # pixel ~ top-1
    assert parity.rule("tflite", "int8", "embedding").min_top1 == 0.98  # cosine floor, integer variant
    assert parity.rule("tflite", "int8", "regression").rel_tol == 0.1  # values judged even when quantized
    with pytest.raises(CompressError, match="no parity rule for coreml:float32"):
        parity.rule("coreml", "float32")
    with pytest.raises(CompressError, match="unknown output kind 'mask'"):
        parity.rule("onnx", "float32", "mask")


def test_dense_agreement_is_the_argmax_map_and_its_miou():
    ref = np.zeros((2, 3, 4, 4))
    ref[:, 1] = 1.0  # every pixel: class 1
    out = ref.copy()
    out[0, 2, 0, 0] = 5.0  # one pixel of 32 flips to class 2
    agree, details = parity.agreement(out, ref, "dense")
    assert agree == pytest.approx(31 / 32) and details["mean_iou"] == pytest.approx((31 / 32 + 0) / 2)


def test_embedding_agreement_is_cosine_and_ignores_scale():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((5, 16))
    assert parity.agreement(3.0 * ref, ref, "embedding")[0] == pytest.approx(1.0)
    agree, details = parity.agreement(-ref, ref, "embedding")
    assert agree == pytest.approx(-1.0) and details["min_cosine"] == pytest.approx(-1.0)


def test_compare_judges_each_kind_by_its_rule():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((4, 8))
    ok = parity.compare(ref + 1e-6, ref, rule=parity.rule("onnx", "float32", "embedding"), runtime="t",
                        kind="embedding")
    assert ok.passed and ok.kind == "embedding" and "min_cosine" in ok.details
    bad = parity.compare(ref + 0.5, ref, rule=parity.rule("onnx", "float32", "regression"), runtime="t",
                         kind="regression", labels=np.zeros(4, int))
    assert not bad.passed and bad.accuracy is None  # no accuracy for values
    with pytest.raises(ParityError, match="max abs diff"):
        parity.require("onnx:float32", bad)


def test_accuracy_drop_in_points():
    assert parity.accuracy_drop_points(0.95, 0.94) == pytest.approx(1.0)
    assert parity.accuracy_drop_points(None, 0.9) is None
