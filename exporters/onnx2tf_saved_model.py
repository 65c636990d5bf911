"""ONNX -> SavedModel with onnx2tf, and nothing else: run as `python -m exporters.onnx2tf_saved_model` with
onnx2tf's own flags (the subset tf_route uses).

Why not `python -m onnx2tf`: after writing the SavedModel, onnx2tf converts the Keras model to a float32
and a float16 .tflite through tf.lite.TFLiteConverter.from_keras_model, which re-serialises every layer's
config (weights included) as JSON. That took 30 of onnx2tf's 40 s on MobileNetV2 at 224 px, and those
files are not used: exporters/tflite converts from the SavedModel itself. onnx2tf.convert(disable_model_save=True)
returns the Keras model instead, and the SavedModel is written as onnx2tf writes it with `-osd`
(a tf_keras ExportArchive with a serving_default endpoint); its outputs were identical (max |diff| 0).
onnxsim runs here too, in this process (simplify below), instead of as onnx2tf's three `onnxsim` commands.
"""
from __future__ import annotations

import argparse
import sys


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m exporters.onnx2tf_saved_model")
    p.add_argument("-i", required=True, help="the ONNX file")
    p.add_argument("-o", required=True, help="the SavedModel folder to write")
    p.add_argument("-osd", action="store_true", help="accepted for onnx2tf's command line; always on")
    p.add_argument("-n", action="store_true", help="quiet")
    p.add_argument("-rtpo", nargs="+", default=[], help="ops replaced by builtin arithmetic (Erf)")
    p.add_argument("-ois", nargs="+", default=[], help="NAME:d0,d1,... static input shapes")
    p.add_argument("-k", nargs="+", default=[], help="inputs kept in PyTorch's NCHW layout")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(sys.argv[1:] if argv is None else argv)
    simplify(a.i, a.ois)
    import onnx2tf
    import tensorflow as tf
    import tf_keras

    model = onnx2tf.convert(
        input_onnx_file_path=a.i, output_folder_path=a.o, output_signaturedefs=True, non_verbose=a.n,
        replace_to_pseudo_operators=[op.lower() for op in a.rtpo], overwrite_input_shape=a.ois or None,
        keep_ncw_or_nchw_or_ncdhw_input_names=a.k or None, disable_model_save=True, not_use_onnxsim=True)
    archive = tf_keras.export.ExportArchive()
    archive.add_endpoint(name="serving_default", fn=lambda *inputs: model(inputs),
                         input_signature=[tf.TensorSpec(t.shape, t.dtype, t.name) for t in model.inputs])
    archive.write_out(a.o)
    return 0


def simplify(path: str, shapes: list[str]) -> None:
    """onnxsim on the graph, in place, three passes as onnx2tf does, but in this process: onnx2tf runs the
    `onnxsim` command once per pass, and each start-up (imports) cost ~1.5 s against 0.3 s for the
    simplification itself (MobileNetV2). A graph onnxsim cannot simplify is converted as it is, as onnx2tf
    does after its warning."""
    import onnx
    import onnxsim

    fixed = {name: [int(d) for d in dims.split(",")] for name, dims in (s.rsplit(":", 1) for s in shapes)}
    model = onnx.load(path)
    try:
        for _ in range(3):
            model, _ok = onnxsim.simplify(model, overwrite_input_shapes=fixed or None)
    except Exception as e:  # noqa: BLE001 - onnxsim fails in many ways; onnx2tf converts the graph anyway
        print(f"onnxsim could not simplify the graph ({type(e).__name__}: {e}); converting it as it is",
              file=sys.stderr)
        return
    onnx.save(model, path)


if __name__ == "__main__":
    sys.exit(main())
