"""The documentation holds together: the API reference builds warning-free from the docstrings,
every "docs/theory.md section N" reference names a section that exists, every relative link
of the Markdown documents reaches its file and heading, and the README stays a short entry
point that keeps the set-up command .ci/run runs."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
THEORY = ROOT / "docs" / "theory.md"
MARKDOWN = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
            ROOT / "benchmarks" / "README.md"]
SOURCES = sorted((ROOT / "sdtheory").rglob("*.py"))

NUM = r"\d+(?:\.\d+)*"
_LIST = rf"{NUM}(?:\s*(?:,|and|to|-)\s*{NUM})*"
_FORWARD = re.compile(rf"docs/theory\.md,?\s+(?:sections?|sec\.)\s+({_LIST})")
_BACKWARD = re.compile(rf"(?:sections?|sec\.)\s+({_LIST})\s+of\s+docs/theory\.md")
_BARE = re.compile(r"docs/theory\.md\s+(\d+\.\d+(?:\.\d+)*)")


def _headings(path: Path) -> list[str]:
    """Markdown headings outside fenced code, without their #'s."""
    out, fenced = [], False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6} (.+)", line)):
            out.append(m.group(1).strip())
    return out


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _flat(text: str) -> str:
    """Text with line breaks, comment marks and indentation collapsed to single spaces, so
    that a reference broken over two lines of a docstring or comment is one string."""
    return re.sub(r"\s+(?:#\s+)?", " ", text)


def _theory_references() -> list[tuple[str, str]]:
    refs = []
    for path in [*SOURCES, *MARKDOWN]:
        text = _flat(path.read_text())
        for rx in (_FORWARD, _BACKWARD, _BARE):
            for m in rx.finditer(text):
                refs += [(str(path.relative_to(ROOT)), n) for n in re.findall(NUM, m.group(1))]
    return refs


def test_theory_sections_are_numbered_headings():
    numbers = [h.split()[0] for h in _headings(THEORY) if re.match(NUM + r" ", h)]
    assert len(numbers) == len(set(numbers)), "a section number of docs/theory.md repeats"
    # the sections the package is built on, from the setting to the differentiable theory
    assert {"1", "2.3", "2.4", "2.5", "3.2", "7.2", "8.1", "8.3", "14.1", "17"} <= set(numbers)


def test_theory_section_references_resolve():
    numbers = {h.split()[0] for h in _headings(THEORY) if re.match(NUM + r" ", h)}
    refs = _theory_references()
    # the package cites the derivations throughout: a collector that finds few has broken
    assert len(refs) >= 100, f"only {len(refs)} references found"
    missing = sorted({f"{where}: section {n}" for where, n in refs if n not in numbers})
    assert not missing, "references to sections docs/theory.md does not have:\n" + "\n".join(
        missing)


def test_markdown_links_reach_files_and_headings():
    bad = []
    for doc in MARKDOWN:
        text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue                                        # http(s), mailto
            file, _, anchor = target.partition("#")
            path = (doc.parent / file).resolve() if file else doc
            if not path.exists():
                bad.append(f"{doc.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and anchor not in {_slug(h) for h in _headings(path)}:
                bad.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert not bad, "\n".join(bad)


def test_named_sections_resolve():
    """'README "Name"' and 'docs/guide.md, "Name"' in code, tests and documents name a heading
    of that file."""
    targets = {"README": ROOT / "README.md", "docs/guide.md": ROOT / "docs" / "guide.md",
               "docs/findings.md": ROOT / "docs" / "findings.md"}
    rx = re.compile(r"(README|docs/guide\.md|docs/findings\.md),? \"([^\"]+)\"")
    found, bad = 0, []
    tests = [p for p in sorted((ROOT / "tests").glob("*.py")) if p.name != "test_docs.py"]
    for path in [*SOURCES, *tests, *MARKDOWN]:
        for name, section in rx.findall(_flat(path.read_text())):
            found += 1
            if not any(section in h for h in _headings(targets[name])):
                bad.append(f"{path.relative_to(ROOT)}: {name} \"{section}\"")
    assert found >= 3
    assert not bad, "\n".join(bad)


def test_readme_is_short_and_keeps_the_ci_command():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"^python3 -m venv .*pytest -q$", ci, re.M).group(0)
    assert command in readme, ".ci/run's set-up and test command is not the README's"
    # the reading of counter-examples: about the reconstruction, not the paper
    assert "full text was not available" in readme and "not necessarily the paper" in readme


@pytest.mark.slow
def test_api_reference_builds_without_warnings(tmp_path):
    if importlib.util.find_spec("sphinx") is None:
        if os.environ.get("CI"):
            pytest.fail("sphinx is missing: install the test extra (pip install -e '.[test]')")
        pytest.skip("sphinx is not installed (test or docs extra)")
    run = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-E", "-q", "-b", "html",
                          str(ROOT / "docs"), str(tmp_path / "html")],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "WARNING" not in run.stderr and "ERROR" not in run.stderr, run.stderr[-4000:]
    html = (tmp_path / "html" / "api.html").read_text()
    # every public name of the facade is documented under the module that defines it
    import sdtheory
    missing = []
    for name in sdtheory._NAMES:
        if name in {"explore"} or name in {"models", "noise", "metrics", "theory", "solvers",
                                           "distill", "population", "jobs", "sweep", "verify",
                                           "plots"}:
            continue
        obj = getattr(sdtheory, name)
        if f'id="{obj.__module__}.{name}"' not in html:
            missing.append(f"{obj.__module__}.{name}")
    assert not missing, "public names missing from the API reference: " + ", ".join(missing)
