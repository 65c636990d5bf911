"""The TensorFlow route shared by the TFLite and TF.js exporters: PyTorch -> ONNX -> SavedModel (onnx2tf).

Made once per job and shared through the typed `job.shared` (tf_onnx, saved_model), in the job's
private temporary folder outside the published output, removed when the job is collected. The SavedModel
comes from the conversion cache (exporters/cache.py) when the same graph went through the same onnx2tf before.

Why these choices (measured, see docs/exporters.md):
- the ONNX fed to onnx2tf comes from the TorchScript exporter (opset 17): onnx2tf handles it best; its
  exact GELU (an Erf pattern) is rewritten by _gelu.py into builtin ops that TFLite (also int8) and TF.js
  run; the opset-20 `Gelu` op of the dynamo exporter would become tf.nn.gelu, whose `Erfc` TF.js lacks.
  Other Erf nodes go through onnx2tf's `-rtpo Erf` (builtin arithmetic instead of a Flex op).
- a static batch of 1 (`-ois`): onnx2tf fails on attention with a dynamic batch (Softmax on a partly
  unknown 5-D shape); TFLite and TF.js models run one sample per call anyway.
- `-k input` keeps the PyTorch NCHW input (one Transpose at the input, none between layers);
  with --layout nhwc the input is NHWC and the graph has no layout Transpose at all.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from compressor.core.errors import CompressError, ConverterError
from compressor.core.files import artifact_files

from . import background, cache
from .base import ExportJob

# onnx2tf is run with a static batch (attention with a dynamic batch fails to convert), and a graph converted at
# batch 1 has that batch in its shapes: apps call it once per sample (TFLite checks whether it resizes anyway)
STATIC_BATCH = "fixed 1 (onnx2tf converts at a static batch; call the model once per sample)"
CALIBRATION_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"
ONNX2TF_TIMEOUT = 1800  # seconds; a 12M-parameter CNN took ~3 min on 2 cores


def is_image_like(shape: tuple) -> bool:
    """Inputs that onnx2tf moves channels-last: float N,C,(D,)H,W or N,C,W."""
    return len(shape) in (3, 4, 5)


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """PyTorch-layout inputs (N,C,...) in the layout the TF models take."""
    if layout == "nhwc" and x.ndim in (3, 4, 5) and np.issubdtype(x.dtype, np.floating):
        return np.ascontiguousarray(np.moveaxis(x, 1, -1))
    return x


def output_layout(tf_shape: tuple[int, ...], torch_shape: tuple[int, ...]) -> str:
    """How a TF model's output holds PyTorch's (N,C,...) output: "nchw" as is, or "nhwc" (onnx2tf moves the
    channels of image-like outputs, such as a segmentation map, last). Batch dimensions are ignored."""
    tf_rest, torch_rest = tuple(tf_shape[1:]), tuple(torch_shape[1:])
    if len(torch_rest) >= 2 and tf_rest == (*torch_rest[1:], torch_rest[0]) and tf_rest != torch_rest:
        return "nhwc"
    return "nchw"


def match_outputs(got: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, str]:
    """Which of a TF model's outputs is which of PyTorch's: {torch name: TF name}. By name first (a converter
    may add a prefix or suffix), then onnx2tf's output_0, output_1, ... in the ONNX graph's order (which is
    the model's), else by shape when every output's is unique."""
    pairs: dict[str, str] = {}
    left = list(got)
    for name in reference:
        hit = name if name in left else next((k for k in left if name in k), None)
        if hit is not None:
            pairs[name] = hit
            left.remove(hit)
    rest = [n for n in reference if n not in pairs]
    numbered = sorted((k for k in left if re.fullmatch(r"output_\d+", k)), key=lambda k: int(k.split("_")[1]))
    if rest and len(numbered) == len(left) == len(rest):
        return {**pairs, **dict(zip(rest, numbered))}
    for name in rest:
        want = sorted(reference[name].shape[1:])
        same = [k for k in left if sorted(got[k].shape[1:]) == want]
        if len(same) != 1:
            raise ConverterError(f"cannot tell which of the converted model's outputs ({', '.join(got)}) is "
                                 f"{name!r}; give the model's outputs distinct names or shapes")
        pairs[name] = same[0]
        left.remove(same[0])
    return pairs


def to_torch_layout(y: np.ndarray, layout: str) -> np.ndarray:
    """A TF model's outputs (batch first) in PyTorch's layout."""
    return np.ascontiguousarray(np.moveaxis(y, -1, 1)) if layout == "nhwc" else y


def layout_of(job: ExportJob) -> str:
    """The TF models' input layout: --layout for one image-like input; a model with several inputs keeps
    PyTorch's layout (their data are fed as they are)."""
    if isinstance(job.example, tuple):
        return "nchw"
    return job.options.layout if is_image_like(tuple(job.example.shape)) else "nchw"


def examples(job: ExportJob) -> tuple:
    """The job's example inputs, one tensor each."""
    return job.example if isinstance(job.example, tuple) else (job.example,)


def tf_onnx(job: ExportJob) -> Path:
    """The ONNX graph for onnx2tf: TorchScript exporter, opset 17; the job's ONNX artifact as a fallback."""
    if job.shared.tf_onnx is not None:
        return job.shared.tf_onnx
    from .onnx import to_onnx

    path = job.private_dir() / "model.onnx"
    try:
        # batch 1, as onnx2tf fixes it (-ois): a traced graph keeps the batch it was traced at in its shapes
        to_onnx(job.model, job.example, path, exporter="torchscript", batch=1)
    except CompressError:
        made = job.shared.float_onnx
        if made is not None:
            shutil.copy(made.path, path)
        else:
            to_onnx(job.model, job.example, path)
    import onnx

    from . import _gelu

    model = onnx.load(str(path))
    if _gelu.rewrite(model):  # exact GELU -> builtin ops with int8 kernels (see _gelu.py)
        onnx.save(model, str(path))
    job.shared.tf_onnx = path
    return path


def layer_of(node) -> str:
    """The PyTorch module path of an ONNX node ('' = the model's own forward)."""
    for prop in getattr(node, "metadata_props", []):  # dynamo exporter
        if prop.key == "pkg.torch.onnx.name_scopes":
            scopes = [s for s in re.findall(r"'([^']*)'", prop.value) if s]
            return scopes[-1] if scopes else ""
    parts = [p for p in node.name.split("/") if p]  # TorchScript exporter: /features/features.0/Conv
    return parts[-2] if len(parts) >= 2 else ""


def describe_node(node) -> str:
    layer = layer_of(node)
    return f"operator {node.op_type} (ONNX node {node.name!r}, layer {layer!r})" if layer else \
        f"operator {node.op_type} (ONNX node {node.name!r}, in the model's forward)"


def check_supported(onnx_path: Path) -> None:
    """Fail before the slow conversion when onnx2tf has no converter for an ONNX operator."""
    import onnx

    spec = importlib.util.find_spec("onnx2tf")  # top-level lookup only: importing onnx2tf would load TensorFlow
    if spec is None or spec.origin is None:
        raise CompressError("onnx2tf is not installed; run `make setup`")
    ops = Path(spec.origin).parent / "ops"
    model = onnx.load(str(onnx_path), load_external_data=False)
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or not (ops / f"{node.op_type}.py").exists():
            raise ConverterError(f"{describe_node(node)} is not supported by onnx2tf (the TFLite/TF.js route); "
                                "replace that layer, or export to --target onnx only")


def node_in_text(onnx_path: Path, text: str):
    """The ONNX node a converter's error text names (the longest name found), or None."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    found = [n for n in model.graph.node if n.name and n.name in text]
    return max(found, key=lambda n: len(n.name)) if found else None


def node_for_tf_ops(onnx_path: Path, tf_ops: list[str]):
    """The first ONNX node whose type a TensorFlow op name contains (Det -> MatrixDeterminant), or None."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    for t in tf_ops:
        for n in model.graph.node:
            if n.op_type.lower() in t.lower():
                return n
    return None


def onnx2tf_command(onnx_path: Path, out: Path, *, inputs: list[tuple[str, tuple]], layout: str) -> list[str]:
    """onnx2tf's command line; `inputs`: each input's (name, shape), fixed at batch 1."""
    static = [f"{name}:{','.join(str(d) for d in (1, *shape[1:]))}" for name, shape in inputs]
    # onnx2tf's flags, run by our driver: it stops at the SavedModel (see exporters/onnx2tf_saved_model.py)
    cmd = [sys.executable, "-m", "exporters.onnx2tf_saved_model", "-i", str(onnx_path), "-o", str(out), "-osd", "-n",
           "-rtpo", "Erf", "-ois", *static]
    keep = [name for name, shape in inputs if is_image_like(shape)]
    if layout == "nchw" and keep:
        cmd += ["-k", *keep]
    return cmd


def _plan(job: ExportJob) -> tuple[Path, list[str], str | None, Path, Path]:
    """What onnx2tf converts and how: (ONNX graph, command, cache key, working folder, SavedModel folder)."""
    import onnx

    src = tf_onnx(job)
    check_supported(src)
    graph = onnx.load(str(src), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    names = [i.name for i in graph.input if i.name not in inits]
    work = job.private_dir() / "onnx2tf"
    work.mkdir(exist_ok=True)
    out = work / "saved_model"
    cmd = onnx2tf_command(src, out, inputs=[(n, tuple(x.shape)) for n, x in zip(names, examples(job))],
                          layout=layout_of(job))
    return src, cmd, saved_model_cache_key(src, cmd), work, out


def prefetch_saved_model(job: ExportJob) -> None:
    """Start onnx2tf in the background (exporters/background.py), unless the SavedModel is made or cached;
    saved_model(job) collects it. A failure to start is left to saved_model, which reports it in its turn."""
    if job.shared.saved_model is not None or "onnx2tf" in job.shared.pending:
        return
    try:
        _, cmd, key, work, _ = _plan(job)
    except CompressError:
        return
    root = cache.root()
    if key is not None and root is not None and (root / key / "meta.json").exists():
        return  # a hit takes a moment in the foreground
    job.shared.pending["onnx2tf"] = start_onnx2tf(cmd, work)


def saved_model(job: ExportJob) -> Path:
    """ONNX -> TensorFlow SavedModel with onnx2tf, once per job (from the conversion cache when the same graph
    was converted with the same command and versions before; collected from the background when
    prefetch_saved_model started it); returns the SavedModel folder."""
    if job.shared.saved_model is not None:
        return job.shared.saved_model
    src, cmd, key, work, out = _plan(job)
    started = job.shared.pending.pop("onnx2tf", None)
    t0 = started.t0 if started is not None else time.perf_counter()
    meta = None if started is not None else cache.fetch(key, out, link=True)  # read-only: hard links cost nothing
    note = None
    if meta is None:
        if started is not None:
            finish_onnx2tf(started, src, out)
        else:
            run_onnx2tf(cmd, src, out, work)
        note = cache.store(key, out, time.perf_counter() - t0, skip=("*.tflite",))
    seconds = time.perf_counter() - t0
    record = {"key": key, **cache.status(key, meta, seconds, note, "saved_model_cache")}
    (work / "cache.json").write_text(json.dumps(record))
    job.shared.saved_model = out
    job.shared.saved_model_seconds = seconds
    for begin in job.shared.when_saved_model:  # converters waiting for it (tfjs.prepare)
        begin()
    job.shared.when_saved_model.clear()
    return out


def saved_model_cache_key(src: Path, cmd: list[str]) -> str | None:
    """The SavedModel's cache key: the graph onnx2tf reads, its command line without paths, the versions of
    the tools that shape its output (onnxsim runs inside onnx2tf); None when the cache is off."""
    if cache.root() is None:
        return None
    paths = {cmd[0], cmd[cmd.index("-i") + 1], cmd[cmd.index("-o") + 1]}
    return cache.make_key(kind="saved_model", onnx=cache.files_digest(artifact_files(src, "onnx")),
                          args=[a for a in cmd if a not in paths],
                          versions=cache.versions("onnx2tf", "tensorflow", "tf_keras", "onnx", "onnxsim"))


def saved_model_cache(job: ExportJob) -> dict:
    """How the job's SavedModel was made: {"key", "saved_model_cache": hit/miss/off, ...} ({} before it is)."""
    try:
        return json.loads((job.private_dir() / "onnx2tf" / "cache.json").read_text())
    except (OSError, ValueError):
        return {}


def start_onnx2tf(cmd: list[str], work: Path) -> background.Started:
    """onnx2tf started as a subprocess in `work` (its log in work/onnx2tf.log)."""
    # onnx2tf downloads this sample-image file from GitHub for 3-channel image inputs (its own checks; we
    # calibrate with the user's data). Nothing may be downloaded at run time: give it a local stand-in.
    sample = work / CALIBRATION_SAMPLE
    if not sample.exists():
        np.save(sample, np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
    # onnx2tf skips onnxsim unless the environment's bin folder is on PATH; it runs in `work`, where it
    # would write (and for int8, download) its own calibration file: nothing reaches the user's folders.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1"}
    return background.start(cmd, log=work / "onnx2tf.log", timeout=ONNX2TF_TIMEOUT, what="onnx2tf", cwd=work,
                            env=env)


def finish_onnx2tf(started: background.Started, src: Path, out: Path) -> None:
    """Wait for onnx2tf; a one-line error naming the layer when no SavedModel came out."""
    _, log = background.finish(started)
    if not (out / "saved_model.pb").exists():
        raise conversion_error("onnx2tf", src, log)


def run_onnx2tf(cmd: list[str], src: Path, out: Path, work: Path) -> None:
    """onnx2tf in the foreground."""
    finish_onnx2tf(start_onnx2tf(cmd, work), src, out)


def conversion_error(tool: str, onnx_path: Path, log: str) -> CompressError:
    """A one-line error naming the operator and layer a converter failed on, from its log."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", log)
    named = re.search(r"onnx_op_name: (\S+)", text)
    node = node_in_text(onnx_path, named.group(1)) if named else node_in_text(onnx_path, text)
    last = [ln.strip() for ln in text.splitlines() if re.match(r"\s*[\w.]*(Error|Exception)\b", ln)]
    why = last[-1][:200] if last else "see the converter's log"
    where = describe_node(node) if node is not None else "the model"
    return ConverterError(f"{tool} could not convert {where}: {why}; replace that layer, or export to --target onnx")


def graph_ops(tflite_path: Path) -> list[dict]:
    """The operators of a .tflite file as the builtin interpreter sees them (no delegate rewriting)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(tflite_path),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return it._get_ops_details()


CONV_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "CONV_3D", "TRANSPOSE_CONV", "CONV_3D_TRANSPOSE"}


def transpose_stats(ops: list[dict]) -> dict[str, int]:
    """Transpose ops in total, and those sitting between two convolutions (layout ping-pong)."""
    producer = {t: i for i, op in enumerate(ops) for t in op["outputs"]}
    consumers: dict[int, list[int]] = {}
    for i, op in enumerate(ops):
        for t in op["inputs"]:
            consumers.setdefault(t, []).append(i)

    def reaches(start: int, step, seen: set) -> bool:
        stack = [start]
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            if ops[i]["op_name"] in CONV_OPS:
                return True
            stack.extend(step(i))
        return False

    up = lambda i: [producer[t] for t in ops[i]["inputs"] if t in producer]
    down = lambda i: [c for t in ops[i]["outputs"] for c in consumers.get(t, [])]
    transposes = [i for i, op in enumerate(ops) if op["op_name"] == "TRANSPOSE"]
    between = sum(1 for i in transposes
                  if any(reaches(j, up, set()) for j in up(i)) and any(reaches(j, down, set()) for j in down(i)))
    return {"transpose_ops": len(transposes), "transposes_between_convs": between}
