"""Every reference in the package's docstrings and comments resolves: each Sphinx role
(:func:, :class:, :mod:, :data:, :meth:, :attr:, ...) names an object that imports, and each
"section N" of the code and the documents (they cite docs/theory.md by its section numbers)
is a numbered heading of docs/theory.md. tests/test_docs.py checks the citations that name
docs/theory.md explicitly, in the code and the Markdown documents."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "sdtheory").rglob("*.py"))
THEORY = ROOT / "docs" / "theory.md"
# everything else that cites sections: the documents, tests, scripts and experiment configs
CITING = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
          *sorted((ROOT / "benchmarks").rglob("*.md")),
          *sorted((ROOT / "benchmarks").rglob("*.py")), *sorted((ROOT / "tests").glob("*.py")),
          *sorted((ROOT / "scripts").rglob("*.py")), *sorted((ROOT / "experiments").glob("*.toml"))]

ROLE = re.compile(r":(func|class|mod|data|meth|attr|exc|obj|const):`([^`]*)`")
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
NUM = r"\d+(?:\.\d+)*"
SECTION = re.compile(rf"\b(?:[Ss]ections?|sec\.)\s+({NUM}(?:\s*(?:,|and|to|-)\s*{NUM})*)")


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _import_prefix(parts: list[str]):
    """(module, rest): the longest importable module prefix of a dotted name, or (None,
    parts) where not even the first part imports."""
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        try:
            return importlib.import_module(name), parts[i:]
        except ModuleNotFoundError as err:
            if err.name is None or not name.startswith(err.name):
                raise          # the module exists but one of its own imports is missing
    return None, parts


def _documented(obj, name: str) -> bool:
    """Whether ``name`` is an attribute of ``obj`` that a class holds without a class-level
    value: a dataclass field, an annotation, or an entry of its docstring's "Attributes:"."""
    if name in getattr(obj, "__dataclass_fields__", {}) or name in getattr(
            obj, "__annotations__", {}):
        return True
    doc = inspect.getdoc(obj) if inspect.isclass(obj) else None
    attributes = doc.partition("Attributes:")[2] if doc else ""
    return re.search(rf"^\s+(?:\w+, )*{re.escape(name)}(?:, \w+)*:", attributes, re.M) is not None


def _chain(obj, parts: list[str]) -> bool:
    for i, part in enumerate(parts):
        if hasattr(obj, part):
            obj = getattr(obj, part)
        else:
            return i == len(parts) - 1 and _documented(obj, part)
    return True


def _resolves(target: str, module_name: str) -> bool:
    """Whether ``target`` names an object: a dotted name that imports (``sdtheory.x.y``,
    ``scipy.special.ndtr``), or a name relative to the module of the docstring or to one of
    its classes (``:meth:`fit``` in a class docstring), as Sphinx looks them up."""
    parts = target.split(".")
    module, rest = _import_prefix(parts)
    if module is not None and _chain(module, rest):
        return True
    own = importlib.import_module(module_name)
    classes = [c for c in vars(own).values() if inspect.isclass(c)]
    return _chain(own, parts) or any(_chain(c, parts) for c in classes)


def _roles() -> list[tuple[str, str, str, str]]:
    """(file, module, role, target) of every role in the package's sources."""
    out = []
    for path in SOURCES:
        for role, text in ROLE.findall(path.read_text()):
            target = text[text.index("<") + 1:-1] if text.endswith(">") else text
            out.append((str(path.relative_to(ROOT)), _module_name(path), role,
                        target.lstrip("~").removesuffix("()")))
    return out


def test_docstring_cross_references_resolve():
    refs = _roles()
    # the docstrings cross-reference throughout: a collector that finds few has broken
    assert len(refs) >= 250, f"only {len(refs)} references found"
    bad = [f"{where}: :{role}:`{target}`" for where, module, role, target in refs
           if not DOTTED.fullmatch(target) or not _resolves(target, module)]
    assert not bad, "references that do not resolve (a dotted name broken over two lines " \
                    "does not either):\n" + "\n".join(bad)


def test_cross_reference_check_catches_stale_names():
    """The resolver is not vacuous: names that do not exist (sdtheory.phase, cited in five
    docstrings after its module had become sdtheory.jobs.sweep) and a private helper that was
    removed are refused, their current homes accepted."""
    module = "sdtheory.plots.figures"
    assert not _resolves("sdtheory.phase.sweep", module)
    assert not _resolves("sdtheory.phase.plot_phase", module)
    assert not _resolves("sdtheory._validate.check_out_file", module)
    assert not _resolves("BlockModel.labels", "sdtheory.noise")    # not in noise's namespace
    assert _resolves("sdtheory.jobs.sweep.phase_diagram", module)
    assert _resolves("sdtheory.plots.phase.plot_phase", module)
    assert _resolves("plot_phase", module)                         # imported there
    assert _resolves("sdtheory.solvers.linear.AveragingOperator.a", module)   # documented
    assert not DOTTED.fullmatch("sdtheory.featuredata.\nblock_statistics")


def test_section_numbers_are_theory_headings():
    """The code and the documents cite docs/theory.md as "section N" (docs/theory.md named once
    in a module docstring or a paragraph, or not at all): every such number is a heading of
    docs/theory.md, and so is every "section N" inside docs/theory.md itself."""
    headings = re.findall(rf"^#+ ({NUM}) ", THEORY.read_text(), re.M)
    numbers = set(headings)
    assert len(numbers) == len(headings) >= 40
    refs = []
    for path in sorted({*SOURCES, *CITING}):
        text = re.sub(r"\s+(?:#\s+)?", " ", path.read_text())
        for found in SECTION.finditer(text):
            refs += [(str(path.relative_to(ROOT)), n) for n in re.findall(NUM, found.group(1))]
    assert len(refs) >= 300, f"only {len(refs)} section references found"
    missing = sorted({f"{where}: section {n}" for where, n in refs if n not in numbers})
    assert not missing, "sections docs/theory.md does not have:\n" + "\n".join(missing)
