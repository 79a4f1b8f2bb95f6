"""``sdtheory phase``: a phase diagram over two parameters, CSV + PNG."""

from __future__ import annotations

import sys

from sdtheory.cli import (
    EXIT_FAIL,
    EXIT_OK,
    Formatter,
    UsageError,
    add_executor_options,
    add_model_options,
    add_noise_options,
    problem_config,
)

DESCRIPTION = """\
Sweep two parameters from {eta, lam, c, d, e, n, K}, the others fixed, and compute in every cell
r* (first round with 100% training accuracy), the accuracy at round R, or the PLL gain (PLL
accuracy minus the best SD accuracy over rounds 0..R). Writes phase_<quantity>_<x>_<y>.csv and
.png into --out. The CSV's column fragile is 1 where a cell's value would change were the tie
tolerance ten times larger or smaller (--fragile hatches those cells)."""


def add_parser(sub) -> None:
    p = sub.add_parser("phase", formatter_class=Formatter, description=DESCRIPTION,
                       help="phase diagram over two parameters (e.g. eta x lam -> r*), CSV + PNG")
    add_model_options(p)
    add_noise_options(p)
    p.add_argument("--x", default="eta:0:0.74:75", metavar="NAME:LO:HI:COUNT[:log]",
                   help="x-axis parameter and range")
    p.add_argument("--y", default="lam:1e-6:1e-2:41:log", metavar="NAME:LO:HI:COUNT[:log]",
                   help="y-axis parameter and range")
    p.add_argument("--quantity", choices=["r_star", "acc_round_R", "pll_gain"], default="r_star",
                   help="what to colour the cells by")
    p.add_argument("--solver", choices=["exact", "linear"], default="exact", help="solver per cell")
    p.add_argument("--max-rounds", type=int, default=60, metavar="R", help="largest round tried")
    p.add_argument("--pll-ties", choices=["split", "lower"], default="split",
                   help="pll_gain only: PLL top-2 tie rule: split the 1/2 equally among the "
                        "classes tied at a rank (the mean over random tie-breaks), or give it "
                        "to the lower class index. Outputs within 100 x the teacher's "
                        "certificate are tied (docs/theory.md section 9)")
    p.add_argument("--fragile", action="store_true",
                   help="hatch the cells whose value would change were the tie tolerance ten "
                        "times larger or smaller (their 'fragile' column is 1 in the CSV "
                        "either way; docs/theory.md section 9)")
    p.add_argument("--out", metavar="DIR", default="out/phase", help="directory for CSV and PNG")
    add_executor_options(p)


def prepare(args):
    """(base configuration, x axis, y axis, R) of parsed options, every check of the options
    done except --out's (shared with ``sdtheory explore``, so that both give one message)."""
    from sdtheory.jobs.sweep import Axis
    from sdtheory.jobs.sweep.engine import check_request

    if args.model == "gmm":
        raise UsageError("phase supports block models only (--model block or superclass); "
                         "--model gmm (Gaussian-mixture features) is not supported")
    if args.jitter:
        raise UsageError("phase supports exact block models only; --jitter (a dense jittered "
                         "Gram matrix) is not supported")
    from sdtheory.cli import refuse_unused

    refuse_unused(args, [("pll_ties", "split", args.quantity == "pll_gain",
                          "--quantity pll_gain")])
    base = problem_config(args)
    x, y = Axis.parse(args.x), Axis.parse(args.y)
    R = check_request(args.quantity, args.solver, args.max_rounds)
    from sdtheory.executors import check_executor

    check_executor(args.executor, args.workers, args.scheduler)
    return base, x, y, R


def run(args) -> int:
    """0: success; 1: some cells failed the certificate (written, marked); 2: bad input."""
    from sdtheory._io import Outputs
    from sdtheory.jobs.sweep import output_names, output_paths, plan, run_plan, write_files
    from sdtheory.results import CERT_BOUND

    base, x, y, R = prepare(args)
    names = output_names(args.quantity, x, y)
    outputs = Outputs(args.out, names)
    p = plan(base, x, y)
    result = run_plan(p, quantity=args.quantity, solver=args.solver, max_rounds=R,
                      pll_ties=args.pll_ties, executor=args.executor, workers=args.workers,
                      scheduler=args.scheduler)
    with outputs:
        write_files(result, outputs.path(names[0]), outputs.path(names[1]),
                    fragile=args.fragile)
    csv_path, png_path = output_paths(result, args.out)
    print(csv_path)
    print(png_path)
    nfail = int(result.failed.sum())
    if nfail:
        print(f"sdtheory phase: {nfail} cells failed the certificate {CERT_BOUND:g} (empty in "
              "the CSV, grey in the PNG)", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK
