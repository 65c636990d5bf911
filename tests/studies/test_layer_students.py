"""The studies of issue 15 run end to end (tiny models; the figures are in docs/distillation.md)."""
import pytest


@pytest.mark.slow
def test_layer_students_quick(capsys):
    pytest.importorskip("transformers")
    from studies import layer_students

    assert layer_students.main(["--quick", "--layers", "2"]) == 0
    out = capsys.readouterr().out
    assert "keeps model.bert.encoder.layer [0, 3]" in out and "| student (distilled, no labels) |" in out


@pytest.mark.slow
def test_student_collapse_quick(capsys):
    from studies import student_collapse

    assert student_collapse.main(["--quick", "--models", "mobilenet_v2"]) == 0
    out = capsys.readouterr().out
    assert out.count("| mobilenet_v2 |") >= 4 and "untrained, 1000 classes" in out
