"""Results files are written whole or not at all: temporary file beside the target, then rename."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable

import numpy as np

__all__ = ["atomic_write", "jsonable", "round_sig", "write_json", "write_text"]


def jsonable(obj, *, nonfinite: str = "null"):
    """JSON-ready copy: numpy scalars and arrays to Python, dict keys to str.

    Args:
      obj: nested dicts / lists / tuples / arrays / scalars.
      nonfinite: what becomes of inf and nan: ``"null"`` (None) or ``"str"`` ("inf", "nan").
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v, nonfinite=nonfinite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, nonfinite=nonfinite) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), nonfinite=nonfinite)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isfinite(x):
            return x
        return None if nonfinite == "null" else str(x)
    return obj


def round_sig(x, digits: int):
    """``x`` rounded to ``digits`` significant digits (the one rounding rule of results files).

    The decimal rounding of Python's float formatting (correctly rounded, the same on every
    platform): ``round_sig(0.006000000000000005, 10) == 0.006``,
    ``round_sig(5.0906e-12, 2) == 5.1e-12``. Floats and numpy floats give a float; arrays and
    lists give a list of the same nesting; ints, bools, None, nan and inf pass through.

    Args:
      x: a number, or a (nested) list / tuple / array of numbers.
      digits: significant digits, >= 1.
    """
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    if isinstance(x, np.ndarray):
        x = x.tolist()
    if isinstance(x, (list, tuple)):
        return [round_sig(v, digits) for v in x]
    if isinstance(x, (bool, np.bool_, int, np.integer)) or x is None:
        return x
    v = float(x)
    if not math.isfinite(v) or v == 0.0:
        return v
    return float(f"{v:.{digits - 1}e}")


def atomic_write(path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it onto ``path``.

    The file gets the usual umask permissions (mkstemp creates 0600); on any error the temporary
    file is removed and nothing is left at ``path``.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    stem, suffix = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".tmp-{stem}-", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path, text: str) -> None:
    """Atomically write ``text`` to ``path``."""

    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write(text)

    atomic_write(path, write)


def write_json(path, doc, *, indent: int | None = 1) -> None:
    """Atomically write ``doc`` as JSON (newline-terminated) to ``path``."""
    write_text(path, json.dumps(doc, indent=indent) + "\n")
