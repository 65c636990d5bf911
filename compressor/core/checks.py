"""One check for every float option: a finite number inside its valid range, or a one-line CompressError.

NaN slips through ordinary comparisons (`nan <= 0` and `nan > 0` are both false) and Inf passes any
lower bound, so each option says its range here once and the message names the option and the range.
"""
from __future__ import annotations

import math
import numbers

from .errors import CompressError

SEED_MAX = 2**32 - 1  # numpy's and scikit-learn's seeds are 32-bit


def interval(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    """The range as a reader writes it: '> 0', '>= 0', '[0, 1]', '(0, 1]' ('' for no bound)."""
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}" if low is not None else ""
    if low is None:
        return f"{'<' if high_open else '<='} {high:g}"
    return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_number(name: str, value: object, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False, hint: str = "") -> float:
    """`value` as a float when it is a finite number in the range; else CompressError naming `name`.

    `hint` (e.g. "typical: 2 to 8") is added to the message after the range.
    """
    where = _in(interval(low, high, low_open, high_open))
    extra = f" ({hint})" if hint else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise CompressError(f"{name} {value!r} must be a number{where}{extra}")
    v = float(value)
    if not math.isfinite(v):
        raise CompressError(f"{name} {value} must be a finite number{where}{extra}")
    if (low is not None and (v <= low if low_open else v < low)) or \
            (high is not None and (v >= high if high_open else v > high)):
        raise CompressError(f"{name} {value} must be{where}{extra}")
    return v


def _in(where: str) -> str:
    return f" in {where}" if where[:1] in ("(", "[") else f" {where}" if where else ""


def check_seed(seed: object, flag: str = "--seed") -> int:
    """Seeds go to numpy, scikit-learn and torch; out of range, they fail deep inside them."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) <= SEED_MAX:
        raise CompressError(f"{flag} {seed!r} must be a whole number in [0, {SEED_MAX}]")
    return int(seed)
