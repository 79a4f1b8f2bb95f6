"""``sdtheory figures``: regenerate every figure (config -> results file -> PNG)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from sdtheory._progress import Progress, quieted
from sdtheory.cli import EXIT_FAIL, EXIT_OK, Formatter, UsageError

log = logging.getLogger("sdtheory.jobs.figures")


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
    from sdtheory.jobs.figures import FIGURES, FigureError, experiments_dir, load_config, run_figure
    from sdtheory.solvers import SolverError

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
    t_all = time.perf_counter()
    progress = Progress(log, total=len(names), what="figure")
    with outputs:
        stage = Path(outputs.folder())
        for name in names:
            t0 = time.perf_counter()

            def step(msg, name=name, t0=t0, level=logging.DEBUG):
                log.log(level, "%s %7.1f s  %s", name, time.perf_counter() - t0, msg)

            step("start" + (" (quick)" if args.quick else ""))
            before = set(stage.iterdir())
            try:
                # one line per figure: the jobs inside a figure report nothing of their own
                with quieted("sdtheory.jobs.sweep", "sdtheory.jobs.probe", "sdtheory.executors",
                             "sdtheory.distill", "sdtheory.solvers"):
                    run_figure(name, stage, quick=args.quick, log=step)
            except (SolverError, FigureError) as err:
                outputs.discard()
                print(f"sdtheory figures: {name} failed, nothing written: {err}",
                      file=sys.stderr)
                return EXIT_FAIL
            made = sorted(outputs.final(p.name) for p in set(stage.iterdir()) - before)
            step(f"done -> {', '.join(made)}", level=logging.INFO)
            progress.step(name)
    log.info("%d figure(s) in %.1f s", len(names), time.perf_counter() - t_all)
    return EXIT_OK
