import pytest
import torch

from compressor.core.errors import CompressError
from compressor.loading import detect_format, from_module, load_model, parse_shape
from compressor.models import DigitsMLP


@pytest.mark.parametrize("fmt", ["torchscript", "pt2", "state_dict", "pickle"])
def test_each_format_loads_and_matches_the_teacher(teacher_files, fmt):
    from compressor import demo

    kw = {"arch": "compressor.models:DigitsCNN"} if fmt == "state_dict" else {}
    kw |= {"trust_model": True} if fmt == "pickle" else {}
    m = load_model(teacher_files[fmt], **kw)
    assert m.input_shape == (1, 1, 8, 8) and m.num_outputs == 10
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(m.module(x), demo.teacher().module(x), atol=1e-5)


def test_missing_file(tmp_path):
    with pytest.raises(CompressError, match="not found"):
        load_model(tmp_path / "nope.pt")


def test_random_bytes(tmp_path):
    p = tmp_path / "model.pt"
    p.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(CompressError, match="not a PyTorch model file"):
        load_model(p)


@pytest.mark.parametrize("fmt", ["torchscript", "pt2", "state_dict"])
def test_truncated_file(teacher_files, tmp_path, fmt):
    data = teacher_files[fmt].read_bytes()
    p = tmp_path / teacher_files[fmt].name
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CompressError, match="truncated|corrupted"):
        load_model(p, arch="compressor.models:DigitsCNN")


def test_state_dict_needs_arch(teacher_files):
    with pytest.raises(CompressError, match="--arch"):
        load_model(teacher_files["state_dict"])


def test_state_dict_that_does_not_fit(teacher_files):
    with pytest.raises(CompressError, match="does not fit --arch compressor.models:DigitsMLP"):
        load_model(teacher_files["state_dict"], arch="compressor.models:DigitsMLP")


@pytest.mark.parametrize("arch, msg", [("nocolon", "package.module:ClassName"),
                                      ("no_such_module_xyz:Net", "cannot import"),
                                      ("compressor.models:Nope", "has no 'Nope'")])
def test_bad_arch(teacher_files, arch, msg):
    with pytest.raises(CompressError, match=msg):
        load_model(teacher_files["state_dict"], arch=arch)


def test_pickle_needs_explicit_trust(teacher_files):
    with pytest.raises(CompressError, match="--trust-model"):
        load_model(teacher_files["pickle"])


def test_pickle_is_never_unpickled_without_trust(tmp_path):
    """A malicious pickle must not run: torch.load(weights_only=True) refuses it before any code runs."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    p = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, p)
    with pytest.raises(CompressError, match="--trust-model"):
        load_model(p)
    assert not marker.exists()


def test_shape_mismatch(teacher_files):
    with pytest.raises(CompressError, match="fails on an input of shape"):
        load_model(teacher_files["torchscript"], input_shape=(1, 3, 32, 32))


def test_input_shape_needed_when_unknown(tmp_path):
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    p = tmp_path / "ts.pt"
    torch.jit.save(torch.jit.script(m), str(p))
    with pytest.raises(CompressError, match="--input-shape"):
        load_model(p)
    assert load_model(p, input_shape=(1, 64)).num_outputs == 10


def test_nan_weights_rejected():
    m = DigitsMLP()
    with torch.no_grad():
        m.net[1].weight[0, 0] = float("nan")
    with pytest.raises(CompressError, match="NaN or Inf"):
        from_module(m)


@pytest.mark.parametrize("text", ["1,a", "0,3", "-1,2", "", "1,,2"])
def test_parse_shape_errors(text):
    with pytest.raises(CompressError, match="--input-shape"):
        parse_shape(text)


def test_parse_shape():
    assert parse_shape("1,3,32,32") == (1, 3, 32, 32)


def test_detect_formats(teacher_files):
    assert detect_format(teacher_files["torchscript"]) == "torchscript"
    assert detect_format(teacher_files["pt2"]) == "torch-export"
    assert detect_format(teacher_files["state_dict"]) == "torch-save"


def test_arch_imports_only_the_named_module(tmp_path, monkeypatch):
    """--arch runs the import of the module it names, and nothing else from the user's folders."""
    import sys

    pkg = tmp_path / "userpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "other.py").write_text(f"open({str(tmp_path / 'other-imported')!r}, 'w').close()\n")
    (pkg / "nets.py").write_text("from compressor.models import DigitsMLP as Net\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    p = tmp_path / "sd.pt"
    from compressor.models import DigitsMLP

    torch.save(DigitsMLP().state_dict(), p)
    m = load_model(p, arch="userpkg.nets:Net")
    assert m.num_outputs == 10
    assert "userpkg.other" not in sys.modules and not (tmp_path / "other-imported").exists()


# issue 13


class TwoOutputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x):
        y = self.fc(x.flatten(1))
        return y, y.softmax(1)


def test_a_model_returning_a_tuple_loads_with_one_output_each(tmp_path):
    p = tmp_path / "tuple.pt"
    torch.jit.save(torch.jit.script(TwoOutputs()), str(p))
    m = load_model(p, input_shape=(1, 1, 8, 8))
    assert [o.name for o in m.outputs] == ["output_0", "output_1"] and m.task == "multi"
    assert m.kinds == ("logits", "logits") and [o.shape for o in m.outputs] == [(1, 10), (1, 10)]


class Nested(torch.nn.Module):
    def forward(self, x):
        return x, (x, x)


def test_nested_outputs_are_refused_in_one_line():
    from compressor.loading import from_module

    with pytest.raises(CompressError, match="output 'output_1' is not a tensor .*flat tuple or dict"):
        from_module(Nested(), input_shape=(1, 4))


def test_predict_packs_several_outputs_and_refuses_other_values():
    import numpy as np

    from compressor.core import feeds
    from compressor.evaluate import predict

    model = TwoOutputs()
    out = predict(model, np.zeros((3, 1, 8, 8), np.float32))
    assert feeds.names(out) == ("output_0", "output_1") and out["output_1"].shape == (3, 10)
    assert model.training  # its mode is restored

    class Text(torch.nn.Module):
        def forward(self, x):
            return "no"
    with pytest.raises(CompressError, match="returns a str, not tensors"):
        predict(Text(), np.zeros((3, 4), np.float32))


def test_the_data_check_runs_before_the_first_forward_pass():
    """--input-shape 1,3,8192,8192 with 8x8 data: refused before the model spends minutes and gigabytes on it."""
    from compressor.loading import finish

    calls = []

    class Counted(torch.nn.Module):
        def forward(self, x):
            calls.append("forward")
            return x.flatten(1)[:, :10]

    def refuse(shape):
        calls.append(shape)
        raise CompressError("data does not fit")

    with pytest.raises(CompressError, match="data does not fit"):
        finish(Counted(), kind="python", source="m", sha="", meta={}, input_shape=(1, 3, 8192, 8192),
               check_shape=refuse)
    assert calls == [(1, 3, 8192, 8192)]


def test_an_input_too_large_to_probe(teacher_files, monkeypatch):
    monkeypatch.setattr("compressor.loading.physical_memory", lambda: 1 << 30)
    with pytest.raises(CompressError, match=r"one input of shape \(1, 3, 8192, 8192\) takes 0.8 GiB"):
        load_model(teacher_files["torchscript"], input_shape=(1, 3, 8192, 8192))


def test_class_names_and_bad_metadata_from_the_file(tmp_path):
    from compressor.loading import META_FILE, save_torchscript

    p = tmp_path / "named.pt"
    save_torchscript(DigitsMLP(), p, (1, 1, 8, 8), classes=tuple("abcdefghij"))
    assert load_model(p).classes == tuple("abcdefghij")
    scripted = torch.jit.script(DigitsMLP())
    for junk in ("[1, 2]", '{"input_shape": "1,1,8,8", "classes": 3}', '{"input_shape": [1, -1, 8]}'):
        torch.jit.save(scripted, str(p), _extra_files={META_FILE: junk})
        with pytest.raises(CompressError, match="pass --input-shape"):  # ignored, not a traceback
            load_model(p)


def test_the_data_gives_the_input_when_the_model_does_not(tmp_path):
    """An .npz's x says the input (batch 1; integers as int64 token ids) when neither the file nor the options do."""
    import json

    import numpy as np

    from tests.conftest import run_cli

    torch.jit.save(torch.jit.script(torch.nn.Sequential(torch.nn.Linear(12, 3))), str(tmp_path / "mlp.pt"))
    x = np.random.default_rng(0).standard_normal((40, 12)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(40) % 3)
    r = run_cli(tmp_path / "mlp.pt", "--data", tmp_path / "d.npz", "--out", tmp_path / "o", timeout=120)
    assert r.returncode == 0, r.stderr
    teacher = json.loads((tmp_path / "o" / "manifest.json").read_text())["teacher"]
    assert teacher["input_shape"] == [1, 12] and teacher["input_dtype"] == "float32"
    emb = torch.nn.Sequential(torch.nn.Embedding(50, 4), torch.nn.Flatten(), torch.nn.Linear(24, 3))
    torch.jit.save(torch.jit.script(emb), str(tmp_path / "emb.pt"))
    np.savez(tmp_path / "ids.npz", x=np.random.default_rng(0).integers(0, 50, (40, 6)))
    from compressor.data import input_guess

    assert input_guess(str(tmp_path / "ids.npz")) == ((1, 6), "int64") and input_guess("digits") is None
    m = load_model(tmp_path / "emb.pt", from_data=input_guess(str(tmp_path / "ids.npz")))
    assert m.input_shape == (1, 6) and m.input_dtype == torch.int64
