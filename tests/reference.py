"""Loader for the public reference vectors in shared/reference (beside the project root)."""

import json
import pathlib

import pytest

_CANDIDATES = [
    pathlib.Path(__file__).resolve().parents[2] / "shared" / "reference" / "public_vectors.json",
    pathlib.Path(__file__).resolve().parents[1] / "shared" / "reference" / "public_vectors.json",
]


def public_vectors() -> dict:
    for p in _CANDIDATES:
        if p.exists():
            return json.loads(p.read_text())
    pytest.skip("shared/reference/public_vectors.json not found beside the project",
                allow_module_level=True)
