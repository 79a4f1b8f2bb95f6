"""What the explorer computes, without the page: its form as command lines, and the library
calls of ``sdtheory phase`` and ``sdtheory simulate`` on them (no web library imported here).

Every request goes through the commands' own parsers and checks
(:func:`sdtheory.cli.phase.prepare`, :func:`sdtheory.cli.simulate.sim_config`), so a bad
value gets the command's one-line message, and a view shows the very command line that
regenerates it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shlex
import tempfile
from dataclasses import dataclass, field

import numpy as np

__all__ = ["FIELDS", "DEFAULTS", "CELL_FILES", "InputError", "Failed", "PhaseView", "CellView",
           "phase_argv", "cell_argv", "parse", "compute_phase", "compute_cell", "phase_files",
           "phase_file_names", "cell_files", "cell_at", "command_line"]

DEFAULTS = {
    # model (the options of sdtheory.cli.add_model_options)
    "model": "block", "K": "4", "n": "500", "c": "0.4", "d": "0.1", "e": "0.0",
    "classes-per-superclass": "2", "dim": "2000", "lam": "1e-05",
    # noise
    "noise": "sym", "eta": "0.5", "sampled": False, "seed": "0",
    # diagram
    "solver": "linear", "quantity": "r_star", "max-rounds": "60",
    "x": "eta", "x-lo": "0", "x-hi": "0.74", "x-count": "75", "x-log": False,
    "y": "lam", "y-lo": "1e-6", "y-hi": "1e-2", "y-count": "41", "y-log": True,
}
"""The form's fields and their first values (the options of ``sdtheory phase``, named as
those; an axis is split into NAME, LO, HI, COUNT and log)."""

FIELDS = tuple(DEFAULTS)

_MODEL_OPTIONS = ("K", "n", "c", "d", "lam", "noise", "eta")


class InputError(ValueError):
    """A bad value: ``message`` is the command's one-line error, ``fields`` the form fields it
    names, first the likeliest (empty: the form as a whole), ``field`` the first or None."""

    def __init__(self, message: str, fields=()):
        super().__init__(message)
        self.message, self.fields = message, tuple(fields)
        self.field = self.fields[0] if self.fields else None


def _model_argv(f: dict, skip=()) -> list[str]:
    """The model and noise options of a form (only those that apply to its model)."""
    argv = ["--model", str(f["model"])]
    names = list(_MODEL_OPTIONS)
    if f["model"] == "superclass":
        names[4:4] = ["e", "classes-per-superclass"]
    if f["model"] == "gmm":
        names[4:4] = ["dim"]
    for name in names:
        if name not in skip:
            argv += [f"--{name}", str(f[name]).strip()]
    if f["sampled"] or f["model"] == "gmm":
        argv += (["--sampled"] if f["sampled"] else []) + ["--seed", str(f["seed"]).strip()]
    return argv


def _axis_spec(f: dict, which: str) -> str:
    spec = ":".join(str(f[k]).strip() for k in (which, f"{which}-lo", f"{which}-hi",
                                                 f"{which}-count"))
    return spec + (":log" if f[f"{which}-log"] else "")


def phase_argv(form: dict) -> list[str]:
    """The ``sdtheory phase`` options of a form (without --out)."""
    f = {**DEFAULTS, **form}
    return (_model_argv(f) + ["--x", _axis_spec(f, "x"), "--y", _axis_spec(f, "y"),
                              "--quantity", str(f["quantity"]), "--solver", str(f["solver"]),
                              "--max-rounds", str(f["max-rounds"]).strip()])


def _value(name: str, v: float) -> str:
    """A cell's parameter value as an option value: integers exactly, floats as repr (the
    value itself, not a rounding of it)."""
    return str(int(v)) if name in ("n", "K") else repr(float(v))


def cell_argv(form: dict, cell: dict | None = None) -> list[str]:
    """The ``sdtheory simulate`` options of one cell: the form's model and noise, the cell's
    values of the swept parameters (``cell``: name -> value; None: the form's own values),
    rounds 0..max-rounds, both solvers and the PLL student."""
    f = {**DEFAULTS, **form}
    cell = cell or {}
    f = {**f, **{k: _value(k, v) for k, v in cell.items()}}
    return _model_argv(f) + ["--rounds", str(f["max-rounds"]).strip(), "--pll",
                             "--solver", "both"]


def command_line(command: str, argv: list[str]) -> str:
    """The shell command of a view."""
    return shlex.join(["sdtheory", command] + argv)


class _Parser(argparse.ArgumentParser):
    """The command's parser, but an error raises (with the command's one-line message)
    instead of printing and leaving."""

    def error(self, message):
        raise InputError(f"{self.prog}: error: {message}", _field_of(message))


def parse(command: str, argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed by the parser of ``sdtheory COMMAND`` (InputError: its message)."""
    from sdtheory.cli import Formatter

    top = argparse.ArgumentParser(prog="sdtheory", formatter_class=Formatter)
    sub = top.add_subparsers(dest="command", parser_class=_Parser)
    importlib.import_module(f"sdtheory.cli.{command}").add_parser(sub)
    return sub.choices[command].parse_args(argv)


# which form fields a message names: an option, an axis, or the parameters it mentions
_FIELD_WORDS = {"classes-per-superclass": r"classes-per-superclass|classes per superclass",
                "max-rounds": r"max-rounds|rounds", "dim": r"dim", "lam": r"lam|lambda",
                "eta": r"eta", "K": r"K", "n": r"n", "c": r"c", "d": r"d", "e": r"e",
                "seed": r"seed", "noise": r"noise", "quantity": r"quantity",
                "solver": r"solver"}


def _field_of(message: str, x: str | None = None, y: str | None = None) -> tuple[str, ...]:
    m = re.search(r"argument --([\w-]+)", message)
    if m:
        name = {"rounds": "max-rounds"}.get(m.group(1), m.group(1))
        return (name,) if name in DEFAULTS else ()
    if x is not None:
        m = re.match(r"bad range '([^']*)'", message) or re.match(r"(\w+) axis:", message)
        if m:
            which = "x" if m.group(1).split(":")[0] == x else "y"
            return (f"{which}-count" if "COUNT" in message else f"{which}-lo",)
        if message.startswith("the same parameter"):
            return ("y",)
    body = re.sub(r"^at [^:]*: ", "", message)      # a cell's error: its parameters come first
    cell = body != message
    hits = [(m.start(), name) for name in DEFAULTS
            for m in [re.search(rf"--{re.escape(name)}\b", body)] if m]
    for name, words in _FIELD_WORDS.items():
        m = re.search(rf"(?<![\w.-])(?:{words})(?![\w-])", body)
        if m:
            hits.append((m.start(), name))
    axes = {x: "x-lo", y: "y-lo"} if cell else {}     # a swept value, or the form's own
    out = []
    for _, name in sorted(hits):
        name = axes.get(name, name)
        if name not in out:
            out.append(name)
    return tuple(out)


class Failed(RuntimeError):
    """A computation that failed on good input: the command's one-line report."""


def _as_command(command: str, argv: list[str], work, x=None, y=None):
    """``work(args)`` on ``argv`` parsed by the command's parser, its errors reported as the
    command reports them (:func:`sdtheory.cli.main`): bad input as an InputError with the
    one-line message (``sdtheory COMMAND: error: ...``), a failed solve as Failed."""
    from sdtheory.executors import TasksFailed
    from sdtheory.solvers import SolverError

    args = parse(command, argv)
    try:
        return work(args)
    except SolverError as err:
        raise Failed(f"sdtheory {command}: solver failed: {err}") from None
    except TasksFailed as err:
        raise Failed(f"sdtheory {command}: failed, nothing written: {err}") from None
    except ValueError as err:       # UsageError is a ValueError too
        raise InputError(f"sdtheory {command}: error: {err}", _field_of(str(err), x, y)) \
            from None
    except MemoryError:
        raise InputError(f"sdtheory {command}: error: out of memory; reduce the problem size") \
            from None


@dataclass(eq=False)
class PhaseView:
    """A computed diagram: the result of ``sdtheory phase`` and what the page draws over it."""

    argv: list[str]
    result: object                        # sweep.PhaseResult
    delta: np.ndarray                     # (ny, nx) Delta of each cell's counts
    command: str = field(init=False)

    def __post_init__(self):
        self.command = command_line("phase", self.argv)


def compute_phase(form: dict) -> PhaseView:
    """The diagram of a form, computed as ``sdtheory phase`` computes it (InputError: bad
    input, with the command's message)."""
    from sdtheory import noise
    from sdtheory.cli.phase import prepare
    from sdtheory.jobs.sweep import plan, run_plan

    argv = phase_argv(form)
    f = {**DEFAULTS, **form}

    def work(args):
        base, x, y, R = prepare(args)
        p = plan(base, x, y)
        result = run_plan(p, quantity=args.quantity, solver=args.solver, max_rounds=R,
                          pll_ties=args.pll_ties)
        delta = np.full(p.shape[0] * p.shape[1], np.nan)
        for g in p.groups:
            delta[g.index] = noise.delta(g.counts)[g.cfg]
        return PhaseView(argv=argv, result=result, delta=delta.reshape(p.shape))

    return _as_command("phase", argv, work, x=f["x"], y=f["y"])


def cell_at(view: PhaseView, ix: int, iy: int) -> dict:
    """The swept parameters' values at cell (ix, iy)."""
    r = view.result
    return {r.x.name: float(r.x_values[ix]), r.y.name: float(r.y_values[iy])}


@dataclass(eq=False)
class CellView:
    """One cell: the document of ``sdtheory simulate --json``, its table as the command
    prints it, and the averaging eigenvalues a_j of the cell's block model."""

    argv: list[str]
    doc: dict
    table: str
    a: dict
    command: str = field(init=False)

    def __post_init__(self):
        self.command = command_line("simulate", self.argv)


def compute_cell(form: dict, cell: dict | None = None) -> CellView:
    """Rounds 0..R of one cell, computed as ``sdtheory simulate`` computes them."""
    from sdtheory.cli.simulate import sim_config
    from sdtheory.jobs.simulate import format_table, simulate
    from sdtheory.problem import model_of
    from sdtheory.theory import averaging_eigenvalues

    argv = cell_argv(form, cell)

    def work(args):
        cfg = sim_config(args)
        doc = simulate(cfg)
        return CellView(argv=argv, doc=doc, table=format_table(doc),
                        a=averaging_eigenvalues(model_of(cfg), cfg.lam))

    return _as_command("simulate", argv, work)


def _read_back(write, name: str) -> bytes:
    """The bytes a writer puts into a file (in a temporary folder, removed again)."""
    with tempfile.TemporaryDirectory(prefix="sdtheory-explore-") as tmp:
        path = os.path.join(tmp, name)
        write(path)
        with open(path, "rb") as fh:
            return fh.read()


def phase_file_names(view: PhaseView) -> tuple[str, str]:
    """The names of the CSV and PNG that ``sdtheory phase`` writes for this diagram."""
    from sdtheory.jobs.sweep.outputs import output_paths

    return tuple(os.path.basename(p) for p in output_paths(view.result, ""))


CELL_FILES = ("simulate.json", "cell.png")
"""The names of a cell view's downloads."""


def phase_files(view: PhaseView) -> dict[str, bytes]:
    """The CSV and PNG that ``sdtheory phase`` writes for this diagram, by file name."""
    from sdtheory.jobs.sweep.outputs import write_files

    csv_name, png_name = phase_file_names(view)
    out: dict[str, bytes] = {}

    def write(tmp_csv):
        tmp_png = os.path.join(os.path.dirname(tmp_csv), png_name)
        write_files(view.result, tmp_csv, tmp_png)
        with open(tmp_png, "rb") as fh:
            out[png_name] = fh.read()

    out[csv_name] = _read_back(write, csv_name)
    return out


def cell_files(view: CellView) -> dict[str, bytes]:
    """The JSON document of ``sdtheory simulate --json`` and the cell view's figure (PNG)."""
    from sdtheory.explore.figures import cell_figure

    def png(path):
        cell_figure(view).savefig(path, format="png")

    json_name, png_name = CELL_FILES
    return {json_name: (json.dumps(view.doc) + "\n").encode(),
            png_name: _read_back(png, png_name)}
