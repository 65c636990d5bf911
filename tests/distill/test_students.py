import pytest
import torch

from compressor.core.errors import CompressError
from compressor.distill import students
from compressor.distill.features import find_layer, probe, tap
from compressor.loading import load_model
from compressor.models import DigitsCNN, DigitsMLP, ResidualCNN


@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_auto_student_keeps_at_most_ratio_and_teacher_weights(ratio):
    torch.manual_seed(0)
    t = DigitsCNN(width=8).eval()
    ex = torch.zeros(1, 1, 8, 8)
    s = students.auto_student(t, ex, ratio)
    n_t, n_s = students.count_params(t), students.count_params(s)
    assert 0.6 * ratio * n_t < n_s <= ratio * n_t
    assert s(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    # every surviving first-layer filter is one of the teacher's, unchanged (initialised from the teacher)
    tw, sw = t.features[0].weight, s.features[0].weight
    assert sw.shape[0] < tw.shape[0]
    assert all(any(torch.equal(f, g) for g in tw) for f in sw)
    # the classifier keeps one output per class
    assert s.head[-1].out_features == 10


def test_auto_student_by_macs_and_on_a_residual_net():
    ex = torch.zeros(1, 3, 16, 16)
    t = ResidualCNN().eval()
    s = students.auto_student(t, ex, 0.3, "macs")
    assert students.count_macs(s, ex) <= 0.3 * students.count_macs(t, ex)
    assert s(ex).shape == (1, 10)


def test_describe_counts():
    m = DigitsMLP(hidden=4)
    d = students.describe(m, torch.zeros(1, 1, 8, 8))
    assert d == {"parameters": 64 * 4 + 4 + 4 * 10 + 10, "macs": 64 * 4 + 4 * 10, "size_bytes": 4 * (310)}


def test_scripted_teacher_cannot_be_pruned(teacher_files):
    for fmt in ("torchscript", "pt2"):
        t = load_model(teacher_files[fmt])
        with pytest.raises(CompressError, match="needs the teacher as a plain nn.Module.*--arch"):
            students.require_module(t, "teacher", "--student auto")


def test_student_file_must_fit_the_teacher(tmp_path, teacher_files):
    t = load_model(teacher_files["state_dict"], arch="compressor.models:DigitsCNN")
    f = tmp_path / "s.pt"
    torch.save(DigitsMLP(classes=5), f)
    with pytest.raises(CompressError, match="5 outputs but the teacher has 10"):
        students.load_student(str(f), t, None, True)
    # a fitting state_dict loads as a trainable module
    torch.save(DigitsMLP().state_dict(), f)
    m = students.load_student(str(f), t, "compressor.models:DigitsMLP", False)
    assert isinstance(m, DigitsMLP)


def test_layer_errors_list_the_names():
    m = DigitsMLP()
    with pytest.raises(CompressError, match="has no layer 'conv9'; available layers: net, net.0, net.1"):
        find_layer(m, "conv9", "student")
    with pytest.raises(CompressError, match="cannot be tapped"):
        find_layer(torch.jit.script(m), "net.1", "teacher")
    assert probe(m, torch.zeros(1, 1, 8, 8), ["net.1", "net.3@in"], "student") == {
        "net.1": torch.Size([1, 64]), "net.3@in": torch.Size([1, 64])}
    with tap(m, ["net.2"], "student") as got:
        m(torch.zeros(2, 1, 8, 8))
    assert got["net.2"].shape == (2, 64)
    assert not m.net[2]._forward_hooks  # hooks removed afterwards


def test_random_init_keeps_the_architecture():
    torch.manual_seed(0)
    t = DigitsCNN(width=8).eval()
    s = students.auto_student(t, torch.zeros(1, 1, 8, 8), 0.5)
    before = {k: v.clone() for k, v in s.state_dict().items()}
    students.reinitialise(s)
    after = s.state_dict()
    assert {k: v.shape for k, v in before.items()} == {k: v.shape for k, v in after.items()}
    assert not torch.equal(before["features.0.weight"], after["features.0.weight"])
