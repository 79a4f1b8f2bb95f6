"""``sdtheory figures``: regenerate every figure (config -> results file -> PNG)."""

from __future__ import annotations

import sys
from pathlib import Path

from sdtheory.cli import EXIT_FAIL, EXIT_OK, Formatter, UsageError


def add_parser(sub) -> None:
    p = sub.add_parser("figures", formatter_class=Formatter,
                       help="regenerate every figure into figures/ (or --only NAME)",
                       description="Run each figure's config in experiments/NAME.toml to a results "
                                   "file (JSON or CSV, with the full config and the package "
                                   "version) and a PNG drawn from that file alone.")
    p.add_argument("--only", metavar="NAME", action="append", default=None,
                   help="regenerate only the named figure (repeatable; see --list)")
    p.add_argument("--out", metavar="DIR", default="figures", help="directory for results and PNGs")
    p.add_argument("--quick", action="store_true", help="reduced settings (for tests)")
    p.add_argument("--list", action="store_true", help="list the figures and exit")


def run(args) -> int:
    """0 on success, 1 if a solver failed (nothing written for that figure), 2 for an unknown
    figure name, a missing experiments directory or an unusable --out."""
    from sdtheory._io import Outputs
    from sdtheory.jobs.figures import (
        FIGURES,
        FigureFailed,
        experiments_dir,
        load_config,
        run_figures,
    )

    if args.list:
        width = max(len(n) for n in FIGURES)
        for f in FIGURES.values():
            print(f"{f.name:<{width}}  {f.description}")
        return EXIT_OK
    names = list(args.only) if args.only else list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise UsageError(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(FIGURES)}")
    try:
        experiments_dir()
    except FileNotFoundError as err:
        raise UsageError(str(err)) from None
    outputs = Outputs(args.out, [f"{name}.png" for name in names])
    for name in names:                 # every config is read before any computation
        try:
            load_config(name, quick=args.quick)
        except FileNotFoundError as err:
            raise UsageError(str(err)) from None
    with outputs:
        try:
            run_figures(names, Path(outputs.folder()), quick=args.quick, final=outputs.final)
        except FigureFailed as err:
            outputs.discard()
            print(f"sdtheory figures: {err.name} failed, nothing written: {err.err}",
                  file=sys.stderr)
            return EXIT_FAIL
    return EXIT_OK
