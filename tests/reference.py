"""The public reference vectors (tests/data/public_vectors.json, provenance in
tests/data/PROVENANCE.md). A missing file fails the tests that need it; it never skips."""

import json
import pathlib

DATA = pathlib.Path(__file__).resolve().parent / "data"


def public_vectors() -> dict:
    return json.loads((DATA / "public_vectors.json").read_text())
