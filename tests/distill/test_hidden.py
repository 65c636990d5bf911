"""--method kd,hidden: student block j learns the hidden state of the teacher block it was copied from."""
import numpy as np
import pytest
import torch
import transformers
from torch import nn

from compressor import data as datasets
from compressor.core.errors import CompressError
from compressor.distill import layers, students
from compressor.distill.config import DistillConfig
from compressor.distill.engine import distill
from compressor.distill.features import tap
from compressor.distill.hidden import Hidden, hidden_gap, layer_pairs
from compressor.distill.methods import Batch, Setup
from compressor.loading import from_module
from tests.distill.test_layers import TokenEncoder
from tests.distill.tiny_bert import CONFIG


def test_six_to_three_layers_map_to_the_blocks_they_were_copied_from():
    torch.manual_seed(0)
    t = TokenEncoder(n_layers=6).eval()
    s, info = layers.drop_layers(t, 3)
    assert info["kept_layers"] == [0, 3, 5]
    assert layer_pairs(t, s) == [("encoder.layers.0", "encoder.layers.0"), ("encoder.layers.3", "encoder.layers.1"),
                                 ("encoder.layers.5", "encoder.layers.2")]
    bert = transformers.BertModel(transformers.BertConfig(**{**CONFIG, "num_hidden_layers": 6})).eval()
    bs, _ = layers.drop_layers(bert, 3)
    assert [t for t, _ in layer_pairs(bert, bs)] == ["encoder.layer.0", "encoder.layer.3", "encoder.layer.5"]
    one, _ = layers.drop_layers(t, 1)  # a one-block stack: found by the teacher's stack name
    assert layer_pairs(t, one) == [("encoder.layers.5", "encoder.layers.0")]


def _hidden_loss(method: Hidden, teacher: nn.Module, student: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), tap(teacher, method.teacher_features, "teacher") as t_feats:
        teacher(ids)
    with tap(student, method.student_features, "student") as s_feats:
        logits = student(ids)
    b = Batch((ids,), torch.full((len(ids),), -1), torch.arange(len(ids)), t_feats=dict(t_feats))
    return method.loss(b, logits, s_feats)


def test_the_hidden_loss_decreases_and_a_narrower_student_is_projected():
    torch.manual_seed(0)
    t = TokenEncoder(n_layers=6).eval()
    s = students.reinitialise(layers.drop_layers(t, 3)[0])
    ids = torch.randint(0, 20, (32, 8))
    m = Hidden(Setup(DistillConfig(methods=("kd", "hidden")), t, s, ids[:1], 32))
    assert all(isinstance(p, nn.Identity) for p in m.projections) and not m.describe()["projected"]
    opt = torch.optim.Adam(s.parameters(), lr=1e-2)
    seen = []
    for _ in range(15):
        loss = _hidden_loss(m, t, s, ids)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen.append(loss.item())
    assert seen[-1] < 0.5 * seen[0]
    narrow = TokenEncoder(d=8, n_layers=2)  # a student file: another width, TinyBERT's uniform mapping
    m = Hidden(Setup(DistillConfig(methods=("kd", "hidden")), t, narrow, ids[:1], 32))
    assert m.describe()["projected"] and [p["teacher"] for p in m.describe()["pairs"]] == ["encoder.layers.0",
                                                                                            "encoder.layers.5"]
    loss = _hidden_loss(m, t, narrow, ids)
    loss.backward()
    assert torch.isfinite(loss) and m.projections[0].weight.grad is not None


@pytest.fixture(scope="module")
def token_task():
    from compressor.distill.trainer import fit

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 20, (360, 8), generator=g)
    y = (ids[:, 0] % 3).numpy().astype(np.int64)
    torch.manual_seed(0)
    sp = datasets.split(datasets.Dataset(ids.numpy(), y, ("a", "b", "c"), "tokens"), seed=0)
    teacher = fit(TokenEncoder(n_layers=6), sp.train, sp.val, epochs=6, lr=3e-3, seed=0).eval()
    teacher.input_dtype = torch.int64  # what the loader reads for a module built in Python
    unlabelled = datasets.Splits(*(datasets.Dataset(d.x, None, (), "tokens") for d in (sp.train, sp.val, sp.test)))
    return teacher, unlabelled


def test_kd_with_hidden_states_ends_closer_to_the_teachers_blocks_than_kd_alone(token_task, tmp_path):
    teacher, sp = token_task
    gaps, outs = {}, {}
    for methods in (("kd",), ("kd", "hidden")):
        cfg = DistillConfig(student="layers:3", methods=methods, epochs=4, lr=3e-3,
                            cache_dir=str(tmp_path / "c"), checkpoint_dir=str(tmp_path / "-".join(methods)))
        outs[methods] = out = distill(from_module(teacher, input_shape=(1, 8)), sp, cfg)
        gaps[methods] = hidden_gap(out.student, teacher, torch.from_numpy(sp.test.x))
    assert gaps[("kd", "hidden")] < 0.5 * gaps[("kd",)], gaps
    assert outs[("kd",)].methods == {}
    assert outs[("kd", "hidden")].methods["hidden"]["pairs"] == [
        {"teacher": "encoder.layers.0", "student": "encoder.layers.0"},
        {"teacher": "encoder.layers.3", "student": "encoder.layers.1"},
        {"teacher": "encoder.layers.5", "student": "encoder.layers.2"}]


def test_a_program_student_is_refused_in_one_line(token_task, tmp_path):
    from tests.distill.test_layers_pt2 import saved

    teacher, sp = token_task
    lm = saved(teacher, tmp_path / "t.pt2", torch.from_numpy(sp.train.x[:2]))
    cfg = DistillConfig(student="layers:3", methods=("kd", "hidden"), epochs=1, cache_dir=str(tmp_path / "c"),
                        checkpoint_dir=str(tmp_path / "r"))
    with pytest.raises(CompressError, match=r"forward hooks.*\.pt2 program.*--arch.*--method kd alone") as e:
        distill(lm, sp, cfg)
    assert "\n" not in str(e.value)


def test_the_manifest_records_the_layer_mapping(token_task, tmp_path):
    from rich.console import Console

    from compressor.config import RunConfig
    from compressor.steps.distill import distill as step
    from compressor.steps.state import State

    teacher, sp = token_task
    d = DistillConfig(student="layers:3", methods=("kd", "hidden"), epochs=1, min_kept=0,
                      cache_dir=str(tmp_path / "c"), checkpoint_dir=str(tmp_path / "r"))
    s = State(RunConfig(model="demo", distill=d), Console(quiet=True), workdir=tmp_path)
    s.teacher, s.splits = from_module(teacher, input_shape=(1, 8)), sp
    step(s)
    sec = s.sections["distillation"]
    assert sec["methods"] == {"kd": 1.0, "hidden": 1.0}
    assert sec["method_details"]["hidden"] == {"loss": "mse", "projected": False, "pairs": [
        {"teacher": "encoder.layers.0", "student": "encoder.layers.0"},
        {"teacher": "encoder.layers.3", "student": "encoder.layers.1"},
        {"teacher": "encoder.layers.5", "student": "encoder.layers.2"}]}
