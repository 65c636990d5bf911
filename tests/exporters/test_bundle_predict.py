"""A bundle's predict() on images: the run's preprocessing (compressor/preprocess.py) done in the browser.

One Chromium page serves every browser check (a page load costs seconds): the RGB bundle's index.html runs
its example and classifies a chosen PNG, then PAGE_CHECKS feeds ImageData, canvases, ImageBitmaps and an
<img> of several sizes to the RGB bundle, and the grayscale, NHWC and unpreprocessed bundles beside it.
"""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch
from PIL import Image

from compressor import preprocess as pp
from compressor.core import chromium
from compressor.core.errors import ConverterError
from exporters import bundle, onnx_web, tfjs
from exporters.base import ExportJob, ExportOptions

LABELS = ("cat", "dog", "fox", "owl", "eel", "yak")
# images as (height, width): the model's own size (no resampling), 2x (shrunk), non-square (shrunk with
# rounding and an off-centre crop), smaller (enlarged)
SIZES = {"same": (64, 64), "double": (128, 128), "tall": (150, 97), "small": (40, 50)}
GRAY = (32, 32)


def tiny_cnn(channels: int, classes: int) -> torch.nn.Module:
    torch.manual_seed(channels)
    return torch.nn.Sequential(
        torch.nn.Conv2d(channels, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, classes)).eval()


def picture(h: int, w: int, seed: int) -> np.ndarray:
    """An image-like uint8 RGB picture: smooth colour fields with some texture."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((w, h), Image.BICUBIC), dtype=np.int16)
    return np.clip(smooth + rng.integers(-24, 25, (h, w, 3)), 0, 255).astype(np.uint8)


def python_input(a: np.ndarray, size: tuple[int, int], pre: pp.Preprocess, mode: str = "RGB") -> np.ndarray:
    """What compressor/data.py feeds the model for this picture."""
    return pp.image_array(Image.fromarray(a).convert(mode), size, pre)


def run(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def make(dest, model, channels, size, pre, labels):
    """A bundle through onnx_web.export, with the job's preprocessing."""
    xs = np.stack([python_input(picture(*size, seed=i), size, pre, "L" if channels == 1 else "RGB")
                   for i in range(3)])
    job = ExportJob(model=model, example=torch.zeros(1, channels, *size), inputs=xs, reference=run(model, xs),
                    calib=xs, workdir=dest, options=ExportOptions(bundle="b"), class_names=labels,
                    preprocess=pre.to_dict())
    arts = {a.name: a for a in onnx_web.export(job)}
    return job, arts["web-bundle:ort"].path


def js_meta(folder) -> dict:
    text = (folder / "model.js").read_text()
    start = text.index("export const meta = ") + len("export const meta = ")
    return json.JSONDecoder().raw_decode(text[start:])[0]


def b64(a: np.ndarray) -> str:
    rgba = np.concatenate([a, np.full(a.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    return base64.b64encode(rgba.tobytes()).decode()


PAGE_CHECKS = """async ([pictures, gray]) => {
  const rgb = await import('./model.js');
  await rgb.load();
  const decode = (s) => Uint8ClampedArray.from(atob(s), (c) => c.charCodeAt(0));
  const plain = (p) => ({ output: Array.from(p.output), top1: p.top1, top: p.top });
  const out = { rgb: {}, gray: {}, nhwc: {} };
  for (const [name, data, h, w] of pictures) {
    const id = new ImageData(decode(data), w, h);
    const canvas = Object.assign(document.createElement('canvas'), { width: w, height: h });
    canvas.getContext('2d').putImageData(id, 0, 0);
    const img = new Image();
    img.src = canvas.toDataURL('image/png');  // lossless: the same pixels through the <img> path
    out.rgb[name] = {
      input: Array.from(await rgb.preprocess(id)),
      imageData: plain(await rgb.predict(id)),
      canvas: plain(await rgb.predict(canvas)),
      bitmap: plain(await rgb.predict(await createImageBitmap(id))),
      img: plain(await rgb.predict(img, { topk: 3 })),
    };
  }
  out.flat = plain(await rgb.predict(await rgb.preprocess(new ImageData(decode(pictures[0][1]), 64, 64))));
  const nhwc = await import('../nhwc/model.js');
  out.nhwc = Array.from(await nhwc.preprocess(new ImageData(decode(pictures[0][1]), 64, 64)));
  const none = await import('../plain/model.js');
  out.refused = await none.preprocess(new ImageData(4, 4)).then(() => 'accepted', (e) => e.message);
  out.badTopk = await rgb.predict(new ImageData(64, 64), { topk: 0 }).then(() => 'accepted', (e) => e.message);
  // last: the grayscale bundle loads its own copy of the runtime, which replaces the global `ort`
  const g = await import('../gray/model.js');
  await g.load();
  for (const [name, data, h, w] of gray) {
    const id = new ImageData(decode(data), w, h);
    out.gray[name] = { input: Array.from(await g.preprocess(id)), pred: plain(await g.predict(id)) };
  }
  return out;
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The bundles side by side in one served folder: rgb (imagenet, labelled), gray (1 channel, own mean/std,
    no labels), nhwc (rgb's meta in NHWC, for preprocess() only), plain (no preprocessing recorded)."""
    root = tmp_path_factory.mktemp("site")
    imagenet, gray_pre = pp.parse("imagenet"), pp.parse("mean=0.5,std=0.25")
    rgb_model, gray_model = tiny_cnn(3, len(LABELS)), tiny_cnn(1, 4)
    rgb_job, rgb = make(root / "r", rgb_model, 3, (64, 64), imagenet, LABELS)
    _, gray = make(root / "g", gray_model, 1, GRAY, gray_pre, None)
    (root / "rgb").symlink_to(rgb, target_is_directory=True)
    (root / "gray").symlink_to(gray, target_is_directory=True)
    meta = js_meta(rgb)
    extra = {"example": rgb_job.inputs[:1], "expected": rgb_job.reference[0], "title": "t", "model_file": "-"}
    bundle.write(root / "nhwc", runtime="ort", meta={**meta, "layout": "nhwc", "inputShape": [1, 64, 64, 3],
                                                     "preprocess": imagenet.to_dict()}, **extra)
    bundle.write(root / "plain", runtime="ort", meta={**meta, "preprocess": None}, **extra)
    return {"root": root, "rgb": rgb, "rgb_model": rgb_model, "gray_model": gray_model, "imagenet": imagenet,
            "gray_pre": gray_pre}


@pytest.fixture(scope="module")
def page(site):
    """One page session: index.html (example run, then a chosen PNG), then PAGE_CHECKS."""
    pictures = {name: picture(*hw, seed=10 + i) for i, (name, hw) in enumerate(SIZES.items())}
    grays = {"same": picture(*GRAY, seed=20), "double": picture(64, 64, seed=21)}
    png = site["root"] / "chosen.png"
    Image.fromarray(pictures["tall"]).save(png)
    requested = []
    with chromium.serve(site["root"]) as url, chromium.chromium() as b:
        p = b.new_page()
        p.on("request", lambda r: requested.append(r.url))
        p.goto(url + "rgb/index.html")
        p.wait_for_function("document.body.dataset.done === '1'", timeout=60_000)
        index = {"result": p.evaluate("window.result"), "status": p.inner_text("#status"),
                 "try_visible": p.is_visible("#try")}
        p.set_input_files("#file", str(png))
        p.wait_for_function("document.body.dataset.tried === '1'", timeout=60_000)
        index.update(tried=p.evaluate("window.tried"), listed=p.inner_text("#top"))
        checks = p.evaluate(PAGE_CHECKS, [[[n, b64(a), *a.shape[:2]] for n, a in pictures.items()],
                                          [[n, b64(a), *a.shape[:2]] for n, a in grays.items()]])
    assert all(u.startswith((url, "blob:", "data:")) for u in requested)  # nothing from the internet
    return {"pictures": pictures, "grays": grays, "index": index, **checks}


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.mark.browser
@pytest.mark.slow
def test_image_inputs_equal_pythons_preprocessing(site, page):
    """Every size, resized or not: the browser's input is Pillow's bit for bit (same resampler, float32 steps)."""
    for name, a in page["pictures"].items():
        want = python_input(a, (64, 64), site["imagenet"])
        got = np.asarray(page["rgb"][name]["input"], np.float32).reshape(want.shape)
        np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.browser
@pytest.mark.slow
def test_image_predictions_match_pytorch(site, page):
    """Every image kind gives PyTorch's output on the Python-preprocessed picture (ORT vs PyTorch: 1e-5)."""
    for name, a in page["pictures"].items():
        want = run(site["rgb_model"], python_input(a, (64, 64), site["imagenet"])[None])[0]
        for kind in ("imageData", "canvas", "bitmap", "img"):
            got = page["rgb"][name][kind]
            np.testing.assert_allclose(got["output"], want, atol=1e-5, err_msg=f"{name} {kind}")
            assert got["top1"] == int(want.argmax()), (name, kind)
    np.testing.assert_array_equal(page["flat"]["output"], page["rgb"]["same"]["imageData"]["output"])


@pytest.mark.browser
@pytest.mark.slow
def test_labels_come_back_with_softmax_scores(site, page):
    a = page["pictures"]["double"]
    probs = softmax(run(site["rgb_model"], python_input(a, (64, 64), site["imagenet"])[None])[0].astype(np.float64))
    order = np.argsort(-probs)
    for kind, k in (("imageData", 5), ("img", 3)):  # default topk 5; {topk: 3}
        top = page["rgb"]["double"][kind]["top"]
        assert [t["index"] for t in top] == order[:k].tolist()
        assert [t["label"] for t in top] == [LABELS[i] for i in order[:k]]
        np.testing.assert_allclose([t["score"] for t in top], probs[order[:k]], atol=1e-5)
    assert page["badTopk"].startswith("topk 0 must be")
    assert all(g["pred"].get("top") is None for g in page["gray"].values())  # no labels: no names


@pytest.mark.browser
@pytest.mark.slow
def test_grayscale_nhwc_and_unpreprocessed_bundles(site, page):
    for name, a in page["grays"].items():  # Pillow's "L" luminance, then the resize
        want = python_input(a, GRAY, site["gray_pre"], "L")
        np.testing.assert_array_equal(np.asarray(page["gray"][name]["input"], np.float32).reshape(want.shape), want)
        np.testing.assert_allclose(page["gray"][name]["pred"]["output"], run(site["gray_model"], want[None])[0],
                                   atol=1e-5)
    nchw = np.asarray(page["rgb"]["same"]["input"], np.float32).reshape(3, 64, 64)
    np.testing.assert_array_equal(np.asarray(page["nhwc"], np.float32).reshape(64, 64, 3), nchw.transpose(1, 2, 0))
    assert page["refused"].startswith("this bundle records no image preprocessing")


@pytest.mark.browser
@pytest.mark.slow
def test_index_page_classifies_a_chosen_image(site, page):
    index = page["index"]
    assert index["result"]["matches"] and index["try_visible"]
    assert f"class {index['result']['top1']} ({LABELS[index['result']['top1']]})" in index["status"]
    tried = index["tried"]
    want = run(site["rgb_model"], python_input(page["pictures"]["tall"], (64, 64), site["imagenet"])[None])[0]
    assert "error" not in tried, tried
    np.testing.assert_allclose(tried["output"], want, atol=1e-5)
    assert tried["top"][0]["label"] == LABELS[int(want.argmax())]
    assert index["listed"].splitlines()[0].startswith(f"{LABELS[int(want.argmax())]}: ")


@pytest.mark.slow
def test_recorded_preprocessing_in_meta_and_manifest(site):
    meta = js_meta(site["rgb"])
    assert meta["labels"] == list(LABELS)
    assert meta["preprocess"]["cropFraction"] == pp.CROP_FRACTION and meta["preprocess"]["divisor"] == 255
    assert meta["preprocess"]["mean"] == list(pp.IMAGENET[0])
    manifest = json.loads((site["rgb"] / "manifest.json").read_text())
    assert manifest["preprocess"] == meta["preprocess"] and manifest["labels"] == list(LABELS)
    assert manifest["format"] == "web-bundle:ort" and manifest["files"]  # the caller's facts, kept beside them
    assert bundle.image_preprocess(None) is None
    with pytest.raises(ConverterError, match="cannot read the recorded image preprocessing"):
        bundle.image_preprocess({"name": "x", "mean": [], "std": [], "resize": "stretched", "scale": "raw"})



@pytest.mark.heavy
@pytest.mark.browser
@pytest.mark.slow
def test_tfjs_nhwc_bundle_takes_an_image(tmp_path):
    """The TF.js loader (a graph with channels last) through the same image path; TF.js wasm vs PyTorch: 1e-4."""
    pre, model = pp.parse("imagenet"), tiny_cnn(3, len(LABELS))
    xs = np.stack([python_input(picture(64, 64, seed=i), (64, 64), pre) for i in range(3)])
    job = ExportJob(model=model, example=torch.zeros(1, 3, 64, 64), inputs=xs, reference=run(model, xs), calib=xs,
                    workdir=tmp_path, options=ExportOptions(bundle="b", layout="nhwc"), class_names=LABELS,
                    preprocess=pre.to_dict())
    tfjs.export(job)
    assert js_meta(tmp_path / "b")["layout"] == "nhwc"
    a = picture(128, 128, seed=5)
    with chromium.serve(tmp_path / "b") as url, chromium.chromium() as b:
        p = b.new_page()
        p.goto(url + "index.html")
        p.wait_for_function("document.body.dataset.done === '1'", timeout=120_000)
        got = p.evaluate("""async ([data, h, w]) => {
          const m = await import('./model.js');
          const id = new ImageData(Uint8ClampedArray.from(atob(data), (c) => c.charCodeAt(0)), w, h);
          const r = await m.predict(id);
          return { output: Array.from(r.output), top: r.top };
        }""", [b64(a), 128, 128])
    want = run(model, python_input(a, (64, 64), pre)[None])[0]
    np.testing.assert_allclose(got["output"], want, atol=1e-4)
    assert got["top"][0]["label"] == LABELS[int(want.argmax())]
