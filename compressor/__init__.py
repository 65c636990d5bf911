"""edge-compress: distil, quantize, export and benchmark PyTorch models for phones, browsers and small CPUs.

The Python API (docs/api.md): `compress(...)`, `load_manifest(...)`, and the error kinds a caller
can catch. Importing this package loads no heavy library.
"""
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from .api import ArtifactEntry, Manifest, compress, load_manifest
from .core.errors import BudgetError, CompressError, ConverterError, ParityError

try:
    __version__ = _version("edge-compress")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = ["ArtifactEntry", "BudgetError", "CompressError", "ConverterError", "Manifest", "ParityError",
           "__version__", "compress", "load_manifest"]
