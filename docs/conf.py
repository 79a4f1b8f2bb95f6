"""Sphinx configuration of the API reference (the docs extra; tests/test_docs.py builds it with -W).

Build: sphinx-build -W -b html docs docs/_build
"""

import re

import sdtheory

project = "sdtheory"
author = "sdtheory contributors"
release = version = sdtheory.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
# The Markdown documents (README, guide, theory, findings) are read as Markdown, not built here.
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build"]
root_doc = "index"
html_theme = "alabaster"

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Attributes:" as a field list of the class (a NamedTuple's fields are members already)
napoleon_use_ivar = True

_LITERAL = re.compile(r"(``.*?``|:\w+:`[^`]*`|`[^`]*`)")
_SHAPED = re.compile(r"^(\s+)(\w+) (\([\w ,.+*/-]*\)):\s")
_RAW: dict[str, list[str]] = {}


def _plain_text(app, what, name, obj, options, lines):
    """The docstrings write formulas in plain text: |x| is an absolute value, a*b a product and
    *args star-arguments, not reStructuredText substitutions or emphasis. Escape both outside
    inline literals and roles (a line that starts with "* " stays a bullet), and read
    "name (U, K): text" as a name and a text that starts with a shape, not a type."""
    for i, line in enumerate(lines):
        line = _SHAPED.sub(r"\1\2: \3 ", line)
        parts = _LITERAL.split(line)
        for j in range(0, len(parts), 2):
            text, lead = parts[j], ""
            if j == 0 and (m := re.match(r"\s*\* ", text)):
                lead, text = m.group(0), text[m.end():]
            parts[j] = lead + text.replace("|", "\\|").replace("*", "\\*")
        lines[i] = "".join(parts)
    if what in ("attribute", "property", "data"):
        _RAW[name] = list(lines)


def _keep_attribute_text(app, what, name, obj, options, lines):
    """An attribute's or property's docstring is text: napoleon would read "(U, K) the
    outputs: ..." as a type "(U, K) the outputs"."""
    if name in _RAW:
        lines[:] = _RAW.pop(name)


def setup(app):
    app.connect("autodoc-process-docstring", _plain_text, priority=100)   # before napoleon
    app.connect("autodoc-process-docstring", _keep_attribute_text, priority=900)   # after it
