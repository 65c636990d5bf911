"""A .pt2 archive is a zip of JSON and pickles: none of its pickles may run code without --trust-model (issue 13)."""
import io
import json
import os
import zipfile

import pytest
import torch

from compressor.core.errors import CompressError
from compressor.loading import load_model
from tests.conftest import run_cli


class Payload:
    """Unpickles by running a shell command, then gives torch.export what the member should hold."""

    def __init__(self, marker, value: str):
        self.marker, self.value = marker, value

    def __reduce__(self):
        code = f"(__import__('os').system('touch {self.marker}'), {self.value})[1]"
        return (eval, (code,))


def pickled(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def rewrite(src, dst, change) -> None:
    """Copy a zip archive, passing each member through change(name, data) -> data (None drops it)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info, data)


def evil_sample_inputs(src, dst, marker) -> None:
    """The attack of issue 13: sample_inputs replaced by a pickle that runs os.system and returns ((x,), {})."""
    payload = pickled(Payload(marker, "((__import__('torch').zeros(1, 1, 8, 8),), {})"))
    rewrite(src, dst, lambda name, data: payload if name.endswith("sample_inputs/model.pt") else data)


def evil_weight(src, dst, marker) -> None:
    """The other door: a weight marked use_pickle, whose file is such a pickle."""
    payload = pickled(Payload(marker, "__import__('torch').nn.Parameter(__import__('torch').zeros(32, 1, 3, 3))"))

    def change(name, data):
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            config["config"]["features.0.weight"]["use_pickle"] = True
            return json.dumps(config).encode()
        return payload if name.endswith("weights/weight_0") else data

    rewrite(src, dst, change)


@pytest.mark.parametrize("craft", [evil_sample_inputs, evil_weight])
def test_pickles_in_a_pt2_never_run_without_trust(teacher_files, tmp_path, craft):
    marker, evil = tmp_path / "pwned", tmp_path / "evil.pt2"
    craft(teacher_files["pt2"], evil, marker)
    with pytest.raises(CompressError, match="--trust-model"):
        load_model(evil)
    assert not marker.exists()
    # the file is a working attack: trusting it runs the command (what --trust-model promises to allow)
    try:
        load_model(evil, trust_model=True)
    except CompressError:
        pass
    assert marker.exists()


def test_a_graph_node_calling_os_system_is_refused(teacher_files, tmp_path):
    """Not a pickle: torch.os is the os module, so a node target "torch.os.system" names os.system.
    torch's verifier refuses the program before anything runs it."""
    marker, evil = tmp_path / "pwned", tmp_path / "evil.pt2"

    def change(name, data):
        if not name.endswith("models/model.json"):
            return data
        program = json.loads(data)
        program["verifiers"] = []
        program["graph_module"]["graph"]["nodes"].insert(0, {
            "target": "torch.os.system", "name": "evil", "outputs": [], "metadata": {},
            "inputs": [{"name": "command", "arg": {"as_string": f"touch {marker}"}, "kind": 1}]})
        return json.dumps(program).encode()

    rewrite(teacher_files["pt2"], evil, change)
    with pytest.raises(CompressError, match="does not load"):
        load_model(evil, input_shape=(1, 1, 8, 8))
    assert not marker.exists()


def test_the_input_shape_comes_from_the_signature(teacher_files, tmp_path):
    """Plain-tensor sample inputs still load (weights-only), but the shape is the program's, not theirs."""
    odd = tmp_path / "odd.pt2"
    other = pickled(((torch.zeros(2, 3, 5, 5),), {}))
    rewrite(teacher_files["pt2"], odd, lambda name, data: other if name.endswith("sample_inputs/model.pt") else data)
    m = load_model(odd)
    assert m.input_shape == (1, 1, 8, 8) and m.input_dtype == torch.float32 and m.num_outputs == 10


def test_the_cli_refuses_the_crafted_file_in_one_line(teacher_files, tmp_path):
    marker, evil = tmp_path / "pwned", tmp_path / "evil.pt2"
    evil_sample_inputs(teacher_files["pt2"], evil, marker)
    r = run_cli(evil, "--data", "digits", "--target", "onnx", "--out", tmp_path / "out")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--trust-model" in lines[0], r.stderr
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pt2"]  # nothing written


def test_a_tampered_pt2_is_one_line_without_torch_warnings(teacher_files, tmp_path):
    """A missing weight makes torch log a 15-line warning with a traceback; the user sees only our line."""
    bad = tmp_path / "bad.pt2"
    rewrite(teacher_files["pt2"], bad, lambda name, data: None if name.endswith("weights/weight_0") else data)
    r = run_cli(bad, "--data", "digits", "--out", tmp_path / "out")
    assert r.returncode == 2
    expected = (f"error: {bad} looks like a torch-export archive but does not load (RuntimeError); it may be "
                "truncated or from another PyTorch version: save it again")
    assert r.stderr.strip().splitlines() == [expected]


def test_a_file_name_that_is_not_utf8_loads(teacher_files, tmp_path):
    """A \\xff byte in the name: torch's C++ loaders take only UTF-8 names, so files are passed open."""
    for fmt in ("torchscript", "pt2"):
        p = tmp_path / os.fsdecode(b"model\xff." + teacher_files[fmt].suffix[1:].encode())
        p.write_bytes(teacher_files[fmt].read_bytes())
        assert load_model(p).num_outputs == 10


@pytest.mark.slow
def test_a_program_with_a_static_batch_is_exported_at_that_batch(tmp_path):
    """torch.export.export(m, (x,)) fixes the batch at 1: the run goes through (no guard traceback), the ONNX
    model keeps batch 1 and says so, and parity runs the held-out inputs in chunks of it."""
    from compressor.demo import teacher

    ep = torch.export.export(teacher().module.eval(), (torch.zeros(1, 1, 8, 8),))
    torch.export.save(ep, str(tmp_path / "static.pt2"))
    p = run_cli(tmp_path / "static.pt2", "--target", "onnx", "--out", tmp_path / "out")
    assert p.returncode == 0, p.stderr[-2000:]
    (onnx,) = json.loads((tmp_path / "out" / "manifest.json").read_text())["artifacts"]
    assert onnx["batch"].startswith("fixed 1") and onnx["inputs"][0]["shape"][0] == 1
    assert onnx["parity"]["passed"] and onnx["parity"]["n_samples"] > 1
