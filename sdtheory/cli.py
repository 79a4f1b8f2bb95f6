"""The ``sdtheory`` command: one subcommand per job (DESIGN.md, "CLI contract").

Exit codes: 0 success, 1 a check failed (verify), 2 bad input or a subcommand not built yet.
"""

from __future__ import annotations

import argparse
import sys

from sdtheory import __version__

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit code 2."""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (theory.md section 4)")
    g.add_argument("--model", choices=["block", "superclass", "gmm"], default="block",
                   help="Gram model: two-level block, three-level superclass block, or "
                        "Gaussian-mixture features whose Gram matrix concentrates on the block model")
    g.add_argument("--K", type=int, default=4, help="number of classes (superclass model: S*m)")
    g.add_argument("--n", type=int, default=500, help="training samples per class")
    g.add_argument("--c", type=float, default=0.4, help="correlation of two samples of one class")
    g.add_argument("--d", type=float, default=0.1,
                   help="correlation across classes (superclass model: within a superclass)")
    g.add_argument("--e", type=float, default=0.0,
                   help="superclass model only: correlation across superclasses (c > d > e)")
    g.add_argument("--classes-per-superclass", type=int, default=2, metavar="M",
                   help="superclass model only: classes per superclass m (K must be a multiple)")
    g.add_argument("--dim", type=int, default=2000,
                   help="gmm model only: feature dimension D")
    g.add_argument("--jitter", type=float, default=0.0, metavar="EPS",
                   help="add symmetric Uniform[-EPS, EPS] noise to the off-diagonal of G "
                        "(seeded by --seed; forces the full-N solver)")
    g.add_argument("--lam", type=float, default=1e-5, help="ridge parameter lambda > 0")


def _add_noise_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("label noise (theory.md section 7)")
    g.add_argument("--noise", choices=["sym", "asym", "pairflip", "superclass"], default="sym",
                   help="transition matrix family")
    g.add_argument("--eta", type=float, default=0.5, help="noise rate eta in [0, 1)")
    g.add_argument("--counts", metavar="FILE", default=None,
                   help="JSON K x K integer count matrix (row = true class, column = given "
                        "label; rows sum to n); overrides --noise/--eta")
    g.add_argument("--sampled", action="store_true",
                   help="draw given labels i.i.d. from the transition matrix (default: exact counts "
                        "floor(n T_kj) off the diagonal, the rest on it)")
    g.add_argument("--seed", type=int, default=0, help="seed for sampled noise, jitter and features")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sdtheory",
        description="Closed-form simulator of self-distillation (SD) and partial-label (PLL) "
                    "students on fixed features, under label noise (Jeong & Chung, ICLR 2025).",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"sdtheory {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("simulate", formatter_class=_Formatter,
                       help="one model, one noise setting, R rounds of SD (+ PLL)",
                       description="Train the teacher (round 0) on the given labels and R students, "
                                   "each on the previous round's outputs, with the exact solver of "
                                   "the fixed point (E) and/or the linearised closed form (L).")
    _add_model_options(p)
    _add_noise_options(p)
    p.add_argument("--rounds", type=int, default=10, metavar="R", help="simulate rounds 0..R")
    p.add_argument("--solver", choices=["exact", "linear", "both", "trained"], default="both",
                   help="exact fixed point (E), linearised closed form (L), both, or a "
                        "gradient-trained linear softmax model")
    p.add_argument("--pll", action="store_true", help="also train the PLL student (top-2 of the teacher)")
    p.add_argument("--pll-ties", choices=["lower", "split"], default="lower",
                   help="PLL top-2 tie rule: lower class index wins, or split the 1/2 equally "
                        "among tied classes (outputs within 1e-9 are tied)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--out", metavar="DIR", default=None, help="also write result.json into DIR")

    p = sub.add_parser("phase", formatter_class=_Formatter,
                       help="phase diagram over two parameters (e.g. eta x lam -> r*), CSV + PNG",
                       description="Sweep two parameters from {eta, lam, c, d, e, n, K}, the others "
                                   "fixed, and compute r*, the accuracy at round R, or the PLL gain.")
    _add_model_options(p)
    _add_noise_options(p)
    p.add_argument("--x", required=False, default="eta:0:0.74:75", metavar="NAME:LO:HI:COUNT[:log]",
                   help="x-axis parameter and range")
    p.add_argument("--y", required=False, default="lam:1e-6:1e-2:41:log", metavar="NAME:LO:HI:COUNT[:log]",
                   help="y-axis parameter and range")
    p.add_argument("--quantity", choices=["r_star", "acc_round_R", "pll_gain"], default="r_star",
                   help="what to colour the cells by")
    p.add_argument("--solver", choices=["exact", "linear"], default="exact", help="solver per cell")
    p.add_argument("--max-rounds", type=int, default=60, metavar="R", help="largest round tried")
    p.add_argument("--pll-ties", choices=["lower", "split"], default="lower",
                   help="pll_gain only: PLL top-2 tie rule (lower class index, or split equally)")
    p.add_argument("--out", metavar="DIR", default="out/phase", help="directory for CSV and PNG")

    p = sub.add_parser("verify", formatter_class=_Formatter,
                       help="numerical checks of every theorem; table of pass/fail with margins",
                       description="Turn each statement of the theory into a numerical experiment "
                                   "over a grid of parameters; exit 0 only if all pass.")
    p.add_argument("--quick", action="store_true", help="small grids (for CI, < 60 s)")
    p.add_argument("--only", metavar="NAME", action="append", default=None,
                   help="run only the named check (repeatable)")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.add_argument("--out", metavar="DIR", default=None, help="also write verify.json into DIR")

    p = sub.add_parser("probe", formatter_class=_Formatter,
                       help="real features (bundled dataset or .npz): noise, rounds, PLL, seeds",
                       description="Linear probing on real features: label noise, SD rounds and "
                                   "the PLL student, over several seeds.")
    p.add_argument("--features", metavar="FILE", default=None,
                   help=".npz with arrays X (N x D) and y (N,); default: the bundled dataset")
    _add_noise_options(p)
    p.add_argument("--lam", type=float, default=1e-4, help="ridge parameter lambda > 0")
    p.add_argument("--rounds", type=int, default=5, metavar="R", help="rounds 0..R")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--out", metavar="DIR", default=None, help="directory for results")

    p = sub.add_parser("figures", formatter_class=_Formatter,
                       help="regenerate every figure into figures/ (or --only NAME)",
                       description="Run each figure's config in experiments/ to a results file and "
                                   "a PNG.")
    p.add_argument("--only", metavar="NAME", action="append", default=None,
                   help="regenerate only the named figure (repeatable)")
    p.add_argument("--out", metavar="DIR", default="figures", help="directory for results and PNGs")
    p.add_argument("--quick", action="store_true", help="reduced settings (for tests)")
    p.add_argument("--list", action="store_true", help="list the figures and exit")
    return parser


def _not_implemented(args: argparse.Namespace) -> int:
    print(f"sdtheory {args.command}: not implemented yet", file=sys.stderr)
    return EXIT_USAGE


def _simulate(args: argparse.Namespace) -> int:
    import json
    import os

    from sdtheory._io import write_json
    from sdtheory.simulate import SimConfig, format_table, load_counts, simulate
    from sdtheory.solve import SolverError

    solvers = {"both": ("exact", "linear")}.get(args.solver, (args.solver,))
    cfg = SimConfig(
        model=args.model, K=args.K, n=args.n, c=args.c, d=args.d, e=args.e,
        classes_per_superclass=args.classes_per_superclass, dim=args.dim, jitter=args.jitter,
        lam=args.lam, noise=args.noise, eta=args.eta,
        counts=load_counts(args.counts) if args.counts else None, sampled=args.sampled,
        seed=args.seed, rounds=args.rounds, solvers=solvers, pll=args.pll,
        pll_ties=args.pll_ties,
    )
    try:
        doc = simulate(cfg, progress=not args.json)
    except SolverError as err:
        print(f"sdtheory simulate: solver failed: {err}", file=sys.stderr)
        return EXIT_FAIL
    if args.out:
        write_json(os.path.join(args.out, "result.json"), doc)
    if args.json:
        print(json.dumps(doc))
    else:
        print(format_table(doc))
    return EXIT_OK


def _lazy(module: str):
    import importlib

    return importlib.import_module(f"sdtheory.{module}")


COMMANDS = {
    "simulate": _simulate,
    "phase": lambda args: _lazy("phase").run_cli(args),
    "verify": lambda args: _lazy("verify").run_cli(args),
    "probe": _not_implemented,
    "figures": lambda args: _lazy("figures").run_cli(args),
}


def main(argv: list[str] | None = None) -> int:
    from sdtheory import enable_x64

    enable_x64()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UsageError as err:
        print(f"sdtheory {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as err:
        print(f"sdtheory {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
