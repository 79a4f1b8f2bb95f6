"""The ``sdtheory`` command: one subcommand per job, one module per subcommand.

Argument parsing lives here only; each subcommand module turns its arguments into library
calls. Exit codes: 0 success, 1 a check or a solve failed, 2 bad input (a one-line error naming
the parameter, no traceback, no file written).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

SUBCOMMANDS = ("simulate", "phase", "verify", "probe", "optimize", "figures", "explore")


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows every default and keeps the descriptions' line breaks."""


class UsageError(ValueError):
    """Bad input from the command line: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line with exit code 2 (argparse prints the usage too)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from sdtheory import __version__

    parser = _Parser(
        prog="sdtheory",
        description="Closed-form simulator of self-distillation (SD) and partial-label (PLL) "
                    "students on fixed features, under label noise (Jeong & Chung, ICLR 2025).",
        epilog="environment:\n  SDTHEORY_JAX_CACHE  folder of JAX's compilation cache and of the "
               "lowered Newton\n                      programs (its programs/ folder), so that a "
               "repeat run skips\n                      tracing and compilation (default "
               "~/.cache/sdtheory/jax;\n                      empty: no cache)",
        formatter_class=Formatter,
    )
    parser.add_argument("--version", action="version", version=f"sdtheory {__version__}")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress lines on stderr (errors are still reported)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=_Parser)
    for name in SUBCOMMANDS:
        importlib.import_module(f"sdtheory.cli.{name}").add_parser(sub)
    return parser


class _Progress:
    """Progress of the library (loggers under "sdtheory", INFO) on stderr while a command
    runs; removed again afterwards (the library itself never installs a handler)."""

    def __init__(self, command: str, quiet: bool):
        self.logger = logging.getLogger("sdtheory")
        self.handler = logging.StreamHandler(sys.stderr)
        self.handler.setFormatter(logging.Formatter(f"sdtheory {command}: %(message)s"))
        self.handler.setLevel(logging.WARNING if quiet else logging.INFO)
        self.level = self.logger.level

    def __enter__(self):
        self.logger.addHandler(self.handler)
        if self.logger.getEffectiveLevel() > logging.INFO:
            self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)


def _setup_jax() -> None:
    """float64, and JAX's persistent compilation cache (a repeat run skips compilation)."""
    from sdtheory._x64 import configure_process

    configure_process()


def command() -> None:
    """The console entry point (``sdtheory`` and ``python -m sdtheory``): :func:`main`, then the
    process ends without the interpreter's finalisation.

    After :func:`main` returns, every result is written and closed. The exit handlers still
    run (logging's flush, temporary files, ...), the standard streams are flushed and other
    non-daemon threads are joined; then ``os._exit`` ends the process. The finalisation it
    skips is mostly the static destructors of JAX's C++ library: 0.2 to 0.3 s after ``import
    jax`` alone, 0.3 to 0.5 s after a full N = 2000 run (measured, benchmarks/README.md). An
    exception (``SystemExit`` included: ``--help``, argparse's errors) leaves the normal way.
    """
    import atexit
    import os
    import threading

    code = main()
    for t in threading.enumerate():
        if t is not threading.current_thread() and not t.daemon:
            t.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code or 0))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sdtheory`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(f"sdtheory.cli.{args.command}")
    from sdtheory.executors import TasksFailed

    try:
        _setup_jax()
        with _Progress(args.command, args.quiet):
            return module.run(args)
    except TasksFailed as err:         # results are written only when every task succeeded
        print(f"sdtheory {args.command}: failed, nothing written: {err}", file=sys.stderr)
        return EXIT_FAIL
    except (UsageError, ValueError) as err:
        print(f"sdtheory {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print(f"sdtheory {args.command}: error: out of memory; reduce the problem size",
              file=sys.stderr)
        return EXIT_USAGE


def add_model_options(p: argparse.ArgumentParser, *, lam: float = 1e-5) -> None:
    """Options of the Gram model (docs/theory.md section 5)."""
    g = p.add_argument_group("model (docs/theory.md section 5)")
    g.add_argument("--model", choices=["block", "superclass", "gmm"], default="block",
                   help="Gram model: two-level block, three-level superclass block, or "
                        "Gaussian-mixture features whose Gram matrix concentrates on the block "
                        "model")
    g.add_argument("--K", type=int, default=4,
                   help="number of classes (superclass model: S*m), >= 2")
    g.add_argument("--n", type=int, default=500, help="training samples per class, >= 1")
    g.add_argument("--c", type=float, default=0.4,
                   help="correlation of two samples of one class (c <= 1)")
    g.add_argument("--d", type=float, default=0.1,
                   help="correlation across classes (superclass model: within a superclass); d < c")
    g.add_argument("--e", type=float, default=0.0,
                   help="superclass model only: correlation across superclasses (c > d > e)")
    g.add_argument("--classes-per-superclass", type=int, default=2, metavar="M",
                   help="superclass model only: classes per superclass m >= 1 (K a multiple of m)")
    g.add_argument("--dim", type=int, default=2000,
                   help="gmm model only: feature dimension D >= K + 1")
    g.add_argument("--jitter", type=float, default=0.0, metavar="EPS",
                   help="add symmetric Uniform[-EPS, EPS] noise to the off-diagonal of G "
                        "(seeded by --seed; forces the full-N solver; G must stay PSD)")
    g.add_argument("--lam", type=float, default=lam,
                   help="ridge parameter lambda, in the validated range [1e-8, 1e3] "
                        "(docs/theory.md section 2.3)")


def add_noise_options(p: argparse.ArgumentParser) -> None:
    """Options of the label noise (docs/theory.md section 6)."""
    g = p.add_argument_group("label noise (docs/theory.md section 6)")
    g.add_argument("--noise", choices=["sym", "asym", "pairflip", "superclass"], default="sym",
                   help="transition matrix family")
    g.add_argument("--eta", type=float, default=0.5, help="noise rate eta in [0, 1)")
    g.add_argument("--counts", metavar="FILE", default=None,
                   help="JSON K x K integer count matrix (row = true class, column = given "
                        "label; rows sum to n); overrides --noise/--eta")
    g.add_argument("--sampled", action="store_true",
                   help="draw given labels i.i.d. from the transition matrix (default: exact "
                        "counts floor(n T_kj) off the diagonal, the rest on it)")
    g.add_argument("--seed", type=int, default=0,
                   help="seed >= 0 for sampled noise, jitter and features")


def problem_config(args, cls=None, **extra):
    """The :class:`~sdtheory.problem.ProblemConfig` (or subclass ``cls``) of parsed options."""
    from sdtheory.problem import ProblemConfig, load_counts

    cls = cls or ProblemConfig
    return cls(model=args.model, K=args.K, n=args.n, c=args.c, d=args.d, e=args.e,
               classes_per_superclass=args.classes_per_superclass, dim=args.dim,
               jitter=args.jitter, lam=args.lam, noise=args.noise, eta=args.eta,
               counts=load_counts(args.counts) if args.counts else None, sampled=args.sampled,
               seed=args.seed, **extra)


if __name__ == "__main__":
    sys.exit(main())


def add_executor_options(p: argparse.ArgumentParser) -> None:
    """Where independent tasks run (:mod:`sdtheory.executors`)."""
    g = p.add_argument_group("execution (independent tasks; results identical for every "
                             "executor)")
    g.add_argument("--executor", choices=["serial", "local", "dask"], default="serial",
                   help="serial: this process; local: an embedded Dask LocalCluster of "
                        "--workers processes (no server to set up); dask: an existing Dask "
                        "scheduler (--scheduler). local and dask need: pip install "
                        "'sdtheory[dask]'")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local: worker processes (default 2)")
    g.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="dask: the scheduler's address")
