"""The small interface to tensorflowjs_converter (.venv-tfjs, TF 2.18) on SavedModels written by TF 2.21."""
from __future__ import annotations

import json

import pytest

from compressor.core.errors import CompressError
from exporters import tfjs

pytestmark = [pytest.mark.slow, pytest.mark.tflite]


def saved_model(path, fn):
    import tensorflow as tf

    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.random.stateless_normal((4, 3), seed=(1, 2)))

        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="input")])
        def serve(self, x):
            return {"output_0": fn(tf.matmul(x, self.w))}

    m = M()
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})
    return path


def test_float16_weights(tmp_path):
    import tensorflow as tf

    sm = saved_model(tmp_path / "sm", tf.nn.relu)
    seconds = tfjs.convert_saved_model(sm, tmp_path / "js", "float16")
    model = json.loads((tmp_path / "js" / "model.json").read_text())
    (weight,) = [w for g in model["weightsManifest"] for w in g["weights"]]
    assert weight["shape"] == [4, 3] and weight["quantization"]["dtype"] == "float16" and seconds > 0
    assert (tmp_path / "js" / model["weightsManifest"][0]["paths"][0]).stat().st_size == 4 * 3 * 2


def test_op_without_tfjs_kernel_is_named(tmp_path):
    import tensorflow as tf

    sm = saved_model(tmp_path / "sm", tf.math.erfc)
    with pytest.raises(CompressError, match="TF.js has no kernel for TensorFlow op.*Erfc"):
        tfjs.convert_saved_model(sm, tmp_path / "js")


def test_missing_converter_says_make_setup(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_TFJS_CONVERTER", str(tmp_path / "nope"))
    with pytest.raises(CompressError, match="make setup"):
        tfjs.convert_saved_model(tmp_path, tmp_path / "js")
