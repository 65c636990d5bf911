"""Each failure kind reaches CI as its own exit status (compressor/core/errors.py, docs/api.md)."""
from __future__ import annotations

from compressor import cli
from compressor.core import parity
from compressor.core.errors import BudgetError, ConverterError


def run(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    return code, capsys.readouterr().err


def test_bad_usage_is_2(capsys, tmp_path):
    code, err = run(capsys, "demo", "--target", "nope", "--out", str(tmp_path / "o"))
    assert code == 2 and err.startswith("error: unknown target 'nope'")


def test_failed_parity_is_3_and_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(parity.RULES, ("onnx", "float32", "logits"), parity.Rule(0.0, 1.0))  # nothing can pass
    code, err = run(capsys, "demo", "--target", "onnx", "--out", str(tmp_path / "o"))
    assert code == 3 and "parity check failed for onnx:float32" in err and not (tmp_path / "o").exists()


def test_missed_budget_is_4(capsys, tmp_path, monkeypatch):
    import compressor.quantize.core as qcore

    def over_budget(*a, **k):
        raise BudgetError("onnx int8 cannot meet the accuracy budget; raise --max-accuracy-drop")
    monkeypatch.setattr(qcore, "static", over_budget)
    code, err = run(capsys, "demo", "--target", "onnx", "--quantize", "int8", "--out", str(tmp_path / "o"))
    assert code == 4 and "accuracy budget" in err and not (tmp_path / "o").exists()


def test_converter_failure_is_5(capsys, tmp_path, monkeypatch):
    import exporters.onnx

    def broken(*a, **k):
        raise ConverterError("ONNX export failed (torchscript: operator aten::foo); replace that layer")
    monkeypatch.setattr(exporters.onnx, "to_onnx", broken)
    code, err = run(capsys, "demo", "--target", "onnx", "--out", str(tmp_path / "o"))
    assert code == 5 and "aten::foo" in err and not (tmp_path / "o").exists()


def test_a_bug_is_70_with_its_traceback_never_1(capsys, tmp_path, monkeypatch):
    import exporters.onnx

    def buggy(*a, **k):
        raise TypeError("unsupported operand")
    monkeypatch.setattr(exporters.onnx, "to_onnx", buggy)
    code, err = run(capsys, "demo", "--target", "onnx", "--out", str(tmp_path / "o"))
    assert code == 70 and "Traceback" in err and not (tmp_path / "o").exists()
    assert err.strip().splitlines()[-1].startswith("error: internal error (TypeError: unsupported operand)")
