from pathlib import Path

from rich.console import Console

from compressor.manifest import with_quality
from compressor.summary import print_run


def test_bundle_row_shows_no_accuracy_for_its_one_example_check():
    parity = {"n_samples": 360, "max_abs_diff": 1e-6, "top1_agreement": 0.9972, "accuracy": 0.9944, "passed": True}
    arts = with_quality([
        {"name": "onnx:int8", "format": "onnx", "variant": "int8", "size_bytes": 27484, "parity": parity},
        {"name": "web-bundle:ort", "format": "web-bundle", "variant": "ort", "size_bytes": 10 ** 7,
         "parity": {**parity, "n_samples": 1, "top1_agreement": 1.0, "accuracy": 1.0}},
    ])
    console = Console(record=True, width=120)
    print_run({"teacher": {"parameters": 65674, "test_accuracy": 1.0}, "artifacts": arts}, Path("out"), console)
    rows = {line.split("│")[1].strip(): line for line in console.export_text().splitlines() if line.count("│") > 3}
    assert "99.72%" in rows["onnx:int8"] and "99.44%" in rows["onnx:int8"]
    assert "100.00%" not in rows["web-bundle:ort"] and rows["web-bundle:ort"].count(" - ") == 2


def test_a_teacher_without_labelled_data_says_so_instead_of_nan():
    console = Console(record=True, width=120)
    print_run({"teacher": {"parameters": 3504872, "test_accuracy": float("nan")}, "artifacts": []}, Path("o"), console)
    text = console.export_text()
    assert "nan" not in text.lower() and "no test accuracy (the data has no labels)" in text
