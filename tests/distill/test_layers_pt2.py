"""--student layers:K on a torch.export program (.pt2): the block stack found from the graph's module paths, the
dropped blocks cut out of the graph, the student smaller, as the nn.Module route's, trainable and exportable."""
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from compressor import data as datasets
from compressor.core.errors import CompressError
from compressor.core.signature import Flat
from compressor.distill import handover, layers, layers_pt2, students
from compressor.distill.config import DistillConfig
from compressor.distill.engine import distill
from compressor.loading import load_model
from compressor.pt2 import ExportedModule
from tests.conftest import run_cli
from tests.distill.test_layers import TokenEncoder


def saved(model: nn.Module, path, *args, **kwargs):
    """`model` exported (dynamic batch for keyword inputs), saved, and read back as the CLI reads it."""
    shapes = {k: {0: torch.export.Dim("batch")} for k in kwargs} if kwargs else None
    torch.export.save(torch.export.export(model, args, kwargs or None, dynamic_shapes=shapes), path)
    return load_model(path)


def tiny_bert(layers_: int = 4):
    from tests.exporters.test_multi_io import tiny_bert as build

    return build(num_hidden_layers=layers_, max_position_embeddings=32)


def bert_program(tmp_path, n: int = 4):
    model = tiny_bert(n)
    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(0))
    return model, saved(model, tmp_path / "bert.pt2", input_ids=ids, attention_mask=torch.ones_like(ids))


def feeds(batch: int = 3, seq: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, 128, (batch, seq), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[0, 8:] = 0  # padding: the mask reaches every kept block
    return ids, mask


def test_transformer_encoder_program_is_cut_like_the_module(tmp_path):
    torch.manual_seed(0)
    module = TokenEncoder().eval()
    lm = saved(module, tmp_path / "t.pt2", torch.randint(0, 20, (2, 6)))
    s, info = layers.drop_layers(lm.module, 2)
    assert isinstance(s, ExportedModule)
    assert info["stack"] == "encoder.layers" and info["kept_layers"] == [0, 3] and info["teacher_layers"] == 4
    ref, ref_info = layers.drop_layers(module, 2)
    assert info["parameters_after"] == students.count_params(s) == ref_info["parameters_after"]
    assert info["parameters_before"] == students.count_params(lm.module) > info["parameters_after"]
    x = torch.randint(0, 20, (2, 6))
    with torch.no_grad():
        assert torch.allclose(s(x), ref(x), atol=1e-6)  # the same function as the nn.Module route's student
        assert torch.allclose(lm.module(x), module(x), atol=1e-6)  # the teacher is untouched
    sd = s.state_dict()  # kept blocks renumbered 0..K-1, with the teacher's weights
    assert torch.equal(sd["program.encoder.layers.1.linear1.weight"], module.encoder.layers[3].linear1.weight)
    assert not any(k.startswith("program.encoder.layers.2.") for k in sd)
    assert layers_pt2.find_stack(s.program) == ("encoder.layers", [0, 1])  # found again as a 2-block stack


def test_bert_program_student_is_smaller_faster_close_and_trains(tmp_path):
    pytest.importorskip("transformers")
    module, lm = bert_program(tmp_path)
    assert isinstance(lm.module, Flat)  # two inputs, two outputs
    s, info = layers.drop_layers(lm.module, 2)
    assert isinstance(s, Flat) and s.input_names == ["input_ids", "attention_mask"]
    assert info["stack"] == "encoder.layer" and info["kept_layers"] == [0, 3]
    ref, ref_info = layers.drop_layers(module, 2)
    assert info["parameters_after"] == ref_info["parameters_after"] < info["parameters_before"]
    nodes = [len(m.inner.program.graph.nodes) for m in (lm.module, s)]
    assert nodes[1] < 0.7 * nodes[0]  # two of four blocks' computations are gone, not skipped at run time
    x = feeds()
    with torch.no_grad():
        hidden, pooled = s(*x)
        expected = ref(input_ids=x[0], attention_mask=x[1])
        teacher = lm.module(*x)
    assert hidden.shape == (3, 12, 32) and pooled.shape == (3, 32)  # another batch than exported: it is dynamic
    assert torch.allclose(hidden, expected.last_hidden_state, atol=1e-5)
    assert torch.allclose(pooled, expected.pooler_output, atol=1e-5)
    cos = nn.functional.cosine_similarity(hidden.flatten(1), teacher[0].flatten(1))
    assert cos.min() > 0.9  # as DistilBERT's initialisation: close to the teacher before any training
    s.train()
    opt = torch.optim.SGD(s.parameters(), lr=0.01)
    losses = []
    for _ in range(2):
        opt.zero_grad()
        loss = (s(*x)[0] - teacher[0]).pow(2).mean()
        loss.backward()
        losses.append(loss.item())
        opt.step()
    grads = {n: p.grad for n, p in s.named_parameters()}
    assert grads["inner.program.encoder.layer.1.output.dense.weight"].abs().sum() > 0  # gradients reach the blocks
    assert grads["inner.program.embeddings.word_embeddings.weight"].abs().sum() > 0
    assert losses[1] < losses[0]


@pytest.mark.parametrize("model", ["bert", "transformer"])
def test_the_student_is_saved_as_a_program_that_loads_and_runs_at_any_batch(tmp_path, model):
    """student.pt of a program's student: a torch.export archive (a traced one froze the batch into the graph)."""
    if model == "bert":
        pytest.importorskip("transformers")
        lm = bert_program(tmp_path)[1]
        x, kind = feeds(5), "regression,embedding"
    else:
        lm = saved(TokenEncoder().eval(), tmp_path / "t.pt2", torch.randint(0, 20, (2, 6)))
        x, kind = (torch.randint(0, 20, (5, 6)),), "logits"
    s, _ = layers.drop_layers(lm.module, 2)
    student = handover.as_loaded(s, lm, "layers:2", kind)
    handover.save(student, tmp_path / "student.pt")
    back = load_model(tmp_path / "student.pt")
    assert back.kind == "torch-export" and back.inputs == lm.inputs and [o.name for o in back.outputs] == [
        o.name for o in lm.outputs]
    assert students.count_params(back.module) == students.count_params(s)
    with torch.no_grad():
        for a, b in zip(*(m(*x) if isinstance(m(*x), tuple) else (m(*x),) for m in (s, back.module))):
            assert torch.allclose(a, b, atol=1e-6)


def test_no_stack_or_too_many_layers_are_one_line_errors(tmp_path, teacher_files):
    with pytest.raises(CompressError, match=r"needs a stack of encoder layers .*program has none; use --student auto"):
        layers.drop_layers(load_model(teacher_files["pt2"]).module, 1)  # a CNN: numbered layers of mixed types
    lm = saved(TokenEncoder().eval(), tmp_path / "t.pt2", torch.randint(0, 20, (2, 6)))
    with pytest.raises(CompressError, match="the teacher has 4 layers in encoder.layers; keep fewer, 1 to 3") as e:
        layers.drop_layers(lm.module, 4)
    assert "\n" not in str(e.value)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return x + torch.tanh(self.lin(x)) + pos


class WithPositions(nn.Module):
    """Each block also takes a tensor of the hidden state's shape (a position code): two candidate inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.pos = nn.Linear(8, 8)
        self.blocks = nn.ModuleList(Block() for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pos(x)
        for b in self.blocks:
            x = b(x, p)
        return x


def test_the_hidden_state_is_the_previous_blocks_output_or_a_one_line_error(tmp_path):
    torch.manual_seed(0)
    module = WithPositions().eval()
    lm = saved(module, tmp_path / "p.pt2", torch.randn(2, 8))
    s, info = layers.drop_layers(lm.module, 2)  # drops block 1: its input from block 0, not the position code
    x = torch.randn(2, 8)
    assert info["kept_layers"] == [0, 2] and torch.allclose(s(x), layers.drop_layers(module, 2)[0](x), atol=1e-6)
    with pytest.raises(CompressError, match=r"cannot tell which input of the teacher's block blocks.0 is its hidden "
                                            r"state .*use --student auto"):
        layers.drop_layers(lm.module, 1)  # block 0 has no previous block to tell its two inputs apart


def test_one_layer_and_random_init(tmp_path):
    torch.manual_seed(0)
    lm = saved(TokenEncoder().eval(), tmp_path / "t.pt2", torch.randint(0, 20, (2, 6)))
    s, info = layers.drop_layers(lm.module, 1)  # every block but the last: a run of dropped blocks chains
    assert info["kept_layers"] == [3] and s(torch.randint(0, 20, (5, 6))).shape == (5, 3)
    before = {k: v.clone() for k, v in s.state_dict().items()}
    students.reinitialise(s)
    after = s.state_dict()
    assert not torch.equal(after["program.encoder.layers.0.linear1.weight"], before["program.encoder.layers.0.linear1.weight"])
    assert torch.equal(after["program.encoder.layers.0.norm1.weight"], before["program.encoder.layers.0.norm1.weight"])


def test_a_program_teacher_distils_into_its_layers(tmp_path):
    """A teacher trained on a token task, saved as .pt2, distilled into 2 of its 4 layers by the trainer."""
    from compressor.distill.trainer import fit

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 20, (360, 6), generator=g)
    y = (ids[:, 0] % 3).numpy().astype(np.int64)
    torch.manual_seed(0)
    sp = datasets.split(datasets.Dataset(ids.numpy(), y, ("a", "b", "c"), "tokens"), seed=0)
    teacher = fit(TokenEncoder(), sp.train, sp.val, epochs=8, lr=3e-3, seed=0).eval()
    lm = saved(teacher, tmp_path / "t.pt2", ids[:2])
    unlabelled = datasets.Splits(*(datasets.Dataset(d.x, None, (), "tokens") for d in (sp.train, sp.val, sp.test)))
    cfg = DistillConfig(student="layers:2", epochs=4, cache_dir=str(tmp_path / "c"), checkpoint_dir=str(tmp_path / "r"))
    out = distill(lm, unlabelled, cfg)
    assert out.student_info["kept_layers"] == [0, 3] and out.student_info["stack"] == "encoder.layers"
    assert out.check["metric"] == "top-1 agreement" and out.check["value"] > 0.6 and not out.check["collapsed"]


@pytest.mark.heavy
@pytest.mark.tflite
def test_the_cli_distils_a_bert_program_into_its_layers_for_every_target(tmp_path):
    """Issue 15's command: `compress encoder.pt2 --student layers:K --data texts.txt --tokenizer DIR --target all`."""
    pytest.importorskip("transformers")
    from tests.compressor.test_text import WORDS, make_tokenizer

    bert_program(tmp_path)
    make_tokenizer(tmp_path / "tok")
    rng = random.Random(0)
    lines = (" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10))) for _ in range(200))
    (tmp_path / "texts.txt").write_text("\n".join(lines) + "\n")
    # a random encoder's pooled vector has no classes whose arg-max int8 must keep: both outputs are embeddings
    r = run_cli("bert.pt2", "--student", "layers:2", "--data", "texts.txt", "--tokenizer", "tok", "--target", "all",
                "--task", "embed", "--epochs", "2", "--teacher-cache-dir", "cache", "--checkpoint-dir", "ck",
                "--out", "out", cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    made = m["student"]["made_by"]
    assert made["stack"] == "encoder.layer" and made["kept_layers"] == [0, 3] and made["teacher_layers"] == 4
    assert made["parameters_after"] == m["student"]["parameters"] < made["parameters_before"]
    assert {a["format"] for a in m["artifacts"]} >= {"onnx", "tflite", "tfjs"}
    assert all(a["parity"]["passed"] for a in m["artifacts"]), [a["name"] for a in m["artifacts"]]


@pytest.mark.heavy
def test_torchrun_two_processes_match_one_for_a_layer_student(tmp_path):
    """Issue 15: torchrun on CPU matches one process for a transformer student too (a layers:2 student cut from
    a BERT program; LayerNorm is per sample, so the averaged gradients equal one process's)."""
    import subprocess
    import sys

    pytest.importorskip("transformers")
    from tests.compressor.test_text import WORDS, make_tokenizer
    from tests.steps.test_distill import ENV, free_port, manifest

    bert_program(tmp_path)
    make_tokenizer(tmp_path / "tok")
    rng = random.Random(0)
    (tmp_path / "texts.txt").write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10)))
                                                  for _ in range(160)) + "\n")
    common = ["bert.pt2", "--student", "layers:2", "--data", "texts.txt", "--tokenizer", "tok", "--target", "onnx",
              "--task", "embed", "--epochs", "2", "--min-kept", "0", "--batch-size", "16",
              "--teacher-cache-dir", "cache"]
    cli = [sys.executable, "-m", "compressor.cli"]
    torchrun = [str(Path(sys.executable).with_name("torchrun")), "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                "--master-port", str(free_port()), "-m", "compressor.cli"]
    for launcher, out in ((torchrun, "ddp"), (cli, "one")):
        r = subprocess.run(launcher + common + ["--out", out, "--checkpoint-dir", f"ck-{out}"], capture_output=True,
                           text=True, env=ENV, cwd=tmp_path, timeout=300, check=False)
        assert r.returncode == 0, r.stderr[-3000:]
    ddp, one = manifest(tmp_path / "ddp"), manifest(tmp_path / "one")
    assert ddp["distillation"]["distributed_world_size"] == 2 and one["distillation"]["distributed_world_size"] == 1
    assert ddp["student"]["made_by"]["kept_layers"] == one["student"]["made_by"]["kept_layers"] == [0, 3]
    h_ddp, h_one = ddp["distillation"]["stages"][0]["history"], one["distillation"]["stages"][0]["history"]
    assert [h["loss"] for h in h_ddp] == pytest.approx([h["loss"] for h in h_one], rel=1e-4)
    assert [h["val"] for h in h_ddp] == pytest.approx([h["val"] for h in h_one], abs=1e-4)
