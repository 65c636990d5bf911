"""The error types the tool raises for anything the user can act on, one exit status each.

Every message is one line: what is wrong, then how to fix it. The CLI prints it without a
traceback and exits with the error's `exit_code`, so that a CI script can branch on the kind:
    2  bad input or usage (CompressError itself)
    3  a parity check failed (ParityError)
    4  an accuracy budget could not be met (BudgetError)
    5  a converter or runtime failed on a supported model (ConverterError), naming the operator/layer
(1 is the benchmark gate's verdict "regression", which is a result, not an error.)
"""


class CompressError(ValueError):
    """A problem with the user's input or environment (exit status 2)."""

    exit_code = 2


class ParityError(CompressError):
    """An artifact's outputs differ from PyTorch's beyond its rule; it is never written."""

    exit_code = 3


class BudgetError(CompressError):
    """No setting tried keeps the accuracy (or agreement) within the budget."""

    exit_code = 4


class ConverterError(CompressError):
    """A converter (torch.onnx, onnx2tf, TFLite, tensorflowjs) or a runtime failed on the model."""

    exit_code = 5
