"""The export step's check: a failed artifact is never written; a failed default reduced-precision TFLite
variant is left out with its reason, the others still ship."""
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from compressor.core.artifact import Artifact
from compressor.core.errors import ParityError
from compressor.core.parity import Parity
from compressor.steps.export import check_and_keep, optional_variant
from exporters.base import ExportOptions


def parity(agreement: float) -> Parity:
    return Parity(n_samples=40, max_abs_diff=0.01, mean_abs_diff=0.001, top1_agreement=agreement,
                  max_abs_threshold=None, min_top1_agreement=0.98)


def run(variants: tuple[str, ...], folder: Path = Path(".")) -> tuple[SimpleNamespace, dict]:
    made = [Artifact(folder / "f32", "tflite", "float32"), Artifact(folder / "f16", "tflite", "float16"),
            Artifact(folder / "dyn", "tflite", "dynamic-int8")]
    agreement = {"float32": 1.0, "float16": 0.925, "dynamic-int8": 1.0}
    s = SimpleNamespace(console=Console(quiet=True), artifacts=[])
    job = SimpleNamespace(options=ExportOptions(variants=variants))
    skipped: dict[str, str] = {}
    check_and_keep(s, made, lambda a: parity(agreement[a.variant]), lambda a: None,
                   optional=optional_variant(job), skipped=skipped)
    return s, skipped


def test_a_default_variant_that_fails_parity_is_skipped_with_the_reason(tmp_path):
    for name in ("f32", "f16", "dyn"):
        (tmp_path / name).write_bytes(b"model")
    s, skipped = run((), tmp_path)
    assert [a.name for a in s.artifacts] == ["tflite:float32", "tflite:dynamic-int8"]
    assert skipped == {"tflite:float16": "parity check failed (top-1 agreement 0.9250 < 0.98); not written"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dyn", "f32"]  # its file is not published either


def test_a_variant_asked_for_by_name_fails_the_run():
    with pytest.raises(ParityError, match="tflite:float16"):
        run(("float32", "float16", "dynamic-int8"))


def test_float32_is_never_optional():
    job = SimpleNamespace(options=ExportOptions())
    assert not optional_variant(job)(Artifact(Path("m"), "tflite", "float32"))
    assert not optional_variant(job)(Artifact(Path("m"), "onnx", "int8"))


def test_a_default_variant_its_runtime_cannot_run_is_skipped_naming_the_operator(tmp_path):
    from compressor.core.errors import ConverterError

    def validate(a):
        if a.variant == "dynamic-int8":
            raise ConverterError("LiteRT cannot run tflite:dynamic-int8: operator CONV_2D writing 'conv1' failed")
        return parity(1.0)
    made = [Artifact(tmp_path / "f32", "tflite", "float32"), Artifact(tmp_path / "dyn", "tflite", "dynamic-int8")]
    for a in made:
        a.path.write_bytes(b"model")
    s = SimpleNamespace(console=Console(quiet=True), artifacts=[])
    skipped: dict[str, str] = {}
    check_and_keep(s, made, validate, lambda a: None, optional=optional_variant(SimpleNamespace(options=ExportOptions())),
                   skipped=skipped)
    assert [a.name for a in s.artifacts] == ["tflite:float32"] and not (tmp_path / "dyn").exists()
    assert "operator CONV_2D writing 'conv1'" in skipped["tflite:dynamic-int8"]
    with pytest.raises(ConverterError):  # the reference variant is never skipped
        check_and_keep(s, made[:1], lambda a: validate(Artifact(a.path, "tflite", "dynamic-int8")), lambda a: None,
                       optional=optional_variant(SimpleNamespace(options=ExportOptions())), skipped=skipped)
