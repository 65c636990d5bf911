"""The LiteRT runner on .tflite files made here with tf.lite.TFLiteConverter (float32 and full int8)."""
import numpy as np
import pytest

from benchmarks.harness import PRESETS, Job, run_isolated

pytestmark = [pytest.mark.tflite, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:Statistics for quantized inputs:UserWarning")]


@pytest.fixture(scope="module")
def tflite_files(tmp_path_factory):
    tf = pytest.importorskip("tensorflow")
    d = tmp_path_factory.mktemp("tflite")
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((8, 8, 1), batch_size=1)
    h = tf.keras.layers.Conv2D(8, 3, activation="relu")(inp)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(10)(tf.keras.layers.Flatten()(h)))
    x = np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 1)).astype(np.float32)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    (d / "f32.tflite").write_bytes(conv.convert())
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[i:i + 1]] for i in range(len(x)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    (d / "int8.tflite").write_bytes(conv.convert())
    np.save(d / "x.npy", x)
    return d, model(x).numpy()


@pytest.mark.parametrize("name,tol", [("f32", 1e-5), ("int8", 0.5)])
def test_litert_cpu_and_mobile_emulated(tflite_files, name, tol):
    d, ref = tflite_files
    for kwargs in ({"threads": 1}, {"threads": 1, "pin_core": 0, "mem_cap_mb": 512}):
        res = run_isolated(Job("litert", str(d / f"{name}.tflite"), (1, 8, 8, 1), "float32", PRESETS["quick"],
                               parity_inputs=str(d / "x.npy"), **kwargs))
        assert "error" not in res, res
        assert res["runtime"].startswith("ai-edge-litert") and res["samples_ms"]
        np.testing.assert_allclose(np.array(res["outputs"]), ref, atol=tol * max(1, np.abs(ref).max()))
        if "pin_core" in kwargs:
            assert res["cores"] == [0] and res["mem_cap_mb"] == 512
