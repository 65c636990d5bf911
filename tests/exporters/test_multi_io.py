"""Models with several inputs and several outputs (issue 12): a BERT-style encoder built from a `transformers`
config (input_ids + attention_mask in, last_hidden_state + pooler_output out) saved as a torch.export program
with a dynamic batch, and a detection-style head returning a dict. Each output is named, kept and checked."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from compressor import data_inputs
from compressor.core import feeds
from compressor.core.errors import CompressError
from compressor.evaluate import predict
from compressor.loading import from_module, load_model
from exporters import onnx as onnx_exporter
from exporters.base import ExportJob, ExportOptions
from tests.compressor.test_text import make_tokenizer
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return bert(tmp_path_factory.mktemp("bert"))


def tiny_bert(cls: str = "BertModel", **config):
    """A tiny Hugging Face BERT from a config (random weights, seed 0, no download), in eval mode."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(**{"vocab_size": 128, "hidden_size": 32, "num_hidden_layers": 1,
                                     "num_attention_heads": 2, "intermediate_size": 64, **config})
    cfg._attn_implementation = "eager"  # the attention every exporter here traces the same way
    torch.manual_seed(0)
    return getattr(transformers, cls)(cfg).eval()


def bert(tmp_path, seq: int = 12):
    """A tiny BERT (random weights, no download) as a .pt2 program with a dynamic batch, called by keyword."""
    model = tiny_bert(num_hidden_layers=2, max_position_embeddings=32)
    ids = torch.randint(0, 128, (2, seq))
    mask = torch.ones(2, seq, dtype=torch.long)
    batch = torch.export.Dim("batch")
    ep = torch.export.export(model, (), {"input_ids": ids, "attention_mask": mask},
                             dynamic_shapes={"input_ids": {0: batch}, "attention_mask": {0: batch}})
    path = tmp_path / "encoder.pt2"
    torch.export.save(ep, path)
    return path


class Detector(nn.Module):
    """Boxes and class scores per anchor, returned as a dict, as detection heads do."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.boxes = nn.Linear(128, 6 * 4)
        self.scores = nn.Linear(128, 6 * 3)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.body(image)
        return {"boxes": self.boxes(h).view(-1, 6, 4), "scores": self.scores(h).view(-1, 6, 3)}


def job_for(lm, x: np.ndarray, workdir, **options) -> ExportJob:
    ref = predict(lm.module, x)
    return ExportJob(model=lm.module, example=lm.example(1), inputs=x, reference=ref, calib=x, workdir=workdir,
                     kind={o.name: k for o, k in zip(lm.outputs, lm.kinds)}, options=ExportOptions(**options))


def test_a_bert_program_is_read_with_every_input_and_output_named(tmp_path, encoder):
    lm = load_model(encoder)
    assert [(i.name, i.shape, i.dtype) for i in lm.inputs] == [("input_ids", (1, 12), "int64"),
                                                              ("attention_mask", (1, 12), "int64")]
    assert [o.name for o in lm.outputs] == ["last_hidden_state", "pooler_output"] and lm.task == "multi"
    d = data_inputs.load("random", lm.inputs)
    assert feeds.names(d.x) == ("input_ids", "attention_mask") and (d.x["attention_mask"] == 1).all()
    out = predict(lm.module, d.x[:5])
    assert out["last_hidden_state"].shape == (5, 12, 32) and out["pooler_output"].shape == (5, 32)
    # the wrapper keeps the model's eval mode: a second predict() must not run with dropout on
    assert not lm.module.training and np.array_equal(predict(lm.module, d.x[:5])["pooler_output"], out["pooler_output"])


def test_onnx_keeps_names_and_a_dynamic_batch_checked_at_1_and_n(tmp_path, encoder):
    lm = load_model(encoder, task="embedding")
    x = data_inputs.load("random", lm.inputs).x[:20]
    job = job_for(lm, x, tmp_path)
    (a,) = onnx_exporter.export(job)
    assert [i.name for i in a.inputs] == ["input_ids", "attention_mask"] and a.inputs[0].shape[0] == "batch"
    assert [o.name for o in a.outputs] == ["last_hidden_state", "pooler_output"]
    p = onnx_exporter.validate(a, job)
    assert p.passed and set(p.outputs) == {"last_hidden_state", "pooler_output"}
    assert all(o["kind"] == "embedding" and o["top1_agreement"] > 0.9999 for o in p.outputs.values())
    assert a.extra["checked_batches"] == [1, 20]


def test_parity_fails_when_any_one_output_is_off(tmp_path):
    from compressor.core.parity import compare_all

    ref = feeds.pack({"a": np.ones((4, 3), np.float32), "b": np.ones((4, 2), np.float32)})
    bad = ref.copy()
    bad["b"] += 0.5
    p = compare_all(bad, ref, fmt="onnx", variant="float32", kind="regression", runtime="test")
    assert not p.passed and p.output == "b" and p.outputs["a"]["passed"] and "output 'b'" in p.failure()


@pytest.mark.heavy
@pytest.mark.slow
@pytest.mark.tflite
def test_tflite_runs_a_bert_encoder_and_names_each_output(tmp_path, encoder):
    from exporters import tflite

    lm = load_model(encoder, task="embedding")  # a random encoder's pooled vector has no classes to agree on
    x = data_inputs.load("random", lm.inputs).x[:12]
    job = job_for(lm, x, tmp_path, variants=("float32", "float16", "int8"))  # int8 calibrated on token ids by name
    for a in tflite.export(job):
        assert {i.name for i in a.inputs} == {"input_ids", "attention_mask"}
        p = tflite.validate(a, job)
        assert p.passed and set(p.outputs) == {"last_hidden_state", "pooler_output"}, (a.name, p.failure())
        assert a.extra["output_names"] == {"output_0": "last_hidden_state", "output_1": "pooler_output"}
        # attention reshapes hold the batch onnx2tf converted at: the manifest says so, with the reason
        assert a.extra["batch"].startswith("fixed 1 ("), a.extra["batch"]


def test_a_bert_classifier_program_gives_named_logits(tmp_path):
    model = tiny_bert("BertForSequenceClassification", num_labels=3)
    ids, mask = torch.randint(0, 128, (2, 10)), torch.ones(2, 10, dtype=torch.long)
    ep = torch.export.export(model, (), {"input_ids": ids, "attention_mask": mask})
    torch.export.save(ep, tmp_path / "classifier.pt2")
    lm = load_model(tmp_path / "classifier.pt2")
    assert [o.name for o in lm.outputs] == ["logits"] and lm.task == "logits" and len(lm.inputs) == 2
    x = data_inputs.load("random", lm.inputs).x[:8]
    job = job_for(lm, x, tmp_path)
    (a,) = onnx_exporter.export(job)
    assert [o.name for o in a.outputs] == ["logits"] and a.extra["batch"].startswith("fixed 2")  # as exported
    assert onnx_exporter.validate(a, job).passed


@pytest.mark.slow
@pytest.mark.tflite
def test_a_detector_returning_a_dict_goes_through_onnx_and_tflite(tmp_path):
    from exporters import tflite

    torch.manual_seed(0)
    lm = from_module(Detector().eval(), input_shape=(1, 3, 16, 16), task="regression")
    assert [o.name for o in lm.outputs] == ["boxes", "scores"]
    x = np.random.default_rng(0).standard_normal((12, 3, 16, 16)).astype(np.float32)
    job = job_for(lm, x, tmp_path, variants=("float32", "float16", "int8"))
    (o,) = onnx_exporter.export(job)
    assert [t.name for t in o.outputs] == ["boxes", "scores"] and onnx_exporter.validate(o, job).passed
    for a in tflite.export(job):
        assert tflite.validate(a, job).passed, a.name
        # its reshapes (view(-1, 6, 4), Flatten) hold batch 1 after conversion: refused at 8, with the reason
        assert a.extra["batch"].startswith("fixed 1 (resizing the batch to 8 fails"), a.extra["batch"]


def test_text_feeds_ids_and_mask_by_name(tmp_path, encoder):
    lm = load_model(encoder)
    make_tokenizer(tmp_path / "tok")
    (tmp_path / "t.txt").write_text("the cat sat\na dog\n" * 15)
    d = data_inputs.load(str(tmp_path / "t.txt"), lm.inputs, tokenizer=str(tmp_path / "tok"))
    assert feeds.names(d.x) == ("input_ids", "attention_mask") and len(d) == 30
    assert d.x["attention_mask"][1].tolist() == [1, 1] + [0] * 10  # "a dog": two real tokens, then padding


def test_npz_with_one_array_per_input_and_its_errors(tmp_path, encoder):
    inputs = load_model(encoder).inputs
    ids = np.random.default_rng(0).integers(0, 64, (30, 12))
    np.savez(tmp_path / "ok.npz", input_ids=ids, attention_mask=np.ones_like(ids))
    d = data_inputs.load(str(tmp_path / "ok.npz"), inputs)
    assert d.x["input_ids"].dtype == np.int64 and len(d) == 30
    np.savez(tmp_path / "missing.npz", input_ids=ids)
    with pytest.raises(CompressError, match="has no array named attention_mask .*named as the inputs"):
        data_inputs.load(str(tmp_path / "missing.npz"), inputs)
    np.savez(tmp_path / "float.npz", input_ids=ids.astype(np.float32), attention_mask=np.ones_like(ids))
    with pytest.raises(CompressError, match="input_ids holds float32 values but the model takes int64"):
        data_inputs.load(str(tmp_path / "float.npz"), inputs)
    np.savez(tmp_path / "short.npz", input_ids=ids[:, :5], attention_mask=np.ones_like(ids[:, :5]))
    with pytest.raises(CompressError, match=r"input_ids has samples of shape \(5,\) but the model takes \(12,\)"):
        data_inputs.load(str(tmp_path / "short.npz"), inputs)
    with pytest.raises(CompressError, match="takes 2 inputs .*give --data FILE.npz with one array per input"):
        data_inputs.load("digits", inputs)


def test_the_cli_exports_a_two_input_program_with_per_output_parity(tmp_path, encoder):
    out = tmp_path / "out"
    r = run_cli(encoder, "--target", "onnx", "--data", "random", "--task", "embed", "--out", out, timeout=300)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    (a,) = [a for a in m["artifacts"] if a["format"] == "onnx"]
    assert set(a["parity"]["outputs"]) == {"last_hidden_state", "pooler_output"}
    assert [i["name"] for i in m["teacher"]["inputs"]] == ["input_ids", "attention_mask"]
    assert "pooler_output" in r.stderr + r.stdout  # each output's parity is printed


def test_several_inputs_need_names_and_refuse_distillation(tmp_path, encoder):
    r = run_cli(encoder, "--input", "1x12:int64", "--input", "1x12:int64", "--out", tmp_path / "o")
    assert r.returncode == 2 and "several --input need a distinct name each" in r.stderr
    r = run_cli(encoder, "--input", "ids:1x12:int64", "--input", "mask:1x12:int64", "--out", tmp_path / "o")
    assert r.returncode == 2 and "takes the inputs input_ids, attention_mask by name" in r.stderr
    r = run_cli(encoder, "--data", "random", "--quantize", "int8", "--out", tmp_path / "o")
    assert r.returncode == 2 and "--quantize takes models with one input and one output" in r.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.browser
def test_browser_bundles_take_named_inputs_and_give_named_outputs(tmp_path, encoder):
    from exporters import onnx_web, tfjs

    lm = load_model(encoder)
    x = data_inputs.load("random", lm.inputs).x[:6]
    job = job_for(lm, x, tmp_path)
    for exporter in (onnx_web, tfjs):
        for a in exporter.export(job):  # the model through model.js on every input, then index.html's example
            p = exporter.validate(a, job)
            assert p.passed, (a.name, p.failure())
            if a.format != "web-bundle":
                assert set(p.outputs) == {"last_hidden_state", "pooler_output"}, a.name
    example = json.loads((tmp_path / "web" / "example.json").read_text())
    assert set(example["input"]) == {"input_ids", "attention_mask"}  # predict({input_ids, attention_mask})


def test_the_benchmark_refuses_several_inputs_in_one_line(tmp_path):
    from benchmarks.discover import item

    inputs = [{"name": "input_ids", "shape": [1, 12], "dtype": "int64"},
              {"name": "attention_mask", "shape": [1, 12], "dtype": "int64"}]
    with pytest.raises(CompressError, match="onnx:float32 takes 2 inputs; the benchmark feeds models with one"):
        item("onnx:float32", tmp_path / "model.onnx", "onnx", "float32", inputs, None)


def test_dynamic_sequence_length_is_checked_at_half_the_length(tmp_path):
    from compressor.loading import finish

    lm = finish(tiny_bert(max_position_embeddings=64), kind="python", source="bert", sha="-", meta={},
                input_shape=None, inputs=[("input_ids", (1, 16), "int64"), ("attention_mask", (1, 16), "int64")])
    x = data_inputs.load("random", lm.inputs).x[:10]
    job = job_for(lm, x, tmp_path, dynamic=("batch", "seq"))
    (a,) = onnx_exporter.export(job)
    assert a.extra["sequence"] == "dynamic" and a.inputs[0].shape[1] != 16  # a symbolic length in the graph
    assert onnx_exporter.validate(a, job).passed
    assert a.extra["checked_sequence_lengths"] == [8, 16] and a.extra["checked_batches"] == [1, 10]


@pytest.mark.heavy
@pytest.mark.browser
def test_a_dict_detector_in_the_browser_bundles(tmp_path):
    from exporters import onnx_web, tfjs

    torch.manual_seed(0)
    lm = from_module(Detector().eval(), input_shape=(1, 3, 16, 16), task="regression")
    x = np.random.default_rng(0).standard_normal((6, 3, 16, 16)).astype(np.float32)
    job = job_for(lm, x, tmp_path)
    for exporter in (onnx_web, tfjs):
        for a in exporter.export(job):
            p = exporter.validate(a, job)
            assert p.passed, (a.name, p.failure())
            if a.format == "tfjs":
                assert a.extra["output_names"] == {"output_0": "boxes", "output_1": "scores"}


def test_token_ids_beyond_the_vocabulary_are_one_line(tmp_path):
    from compressor.loading import finish

    lm = finish(tiny_bert(vocab_size=20, hidden_size=16, intermediate_size=32), kind="python", source="bert", sha="-", meta={},
                input_shape=None, inputs=[("input_ids", (1, 8), "int64"), ("attention_mask", (1, 8), "int64")])
    x = data_inputs.load("random", lm.inputs).x[:4]  # ids up to 99, vocabulary 20
    with pytest.raises(CompressError, match=r"the model fails on the data \(IndexError: .*vocabulary size"):
        predict(lm.module, x)
