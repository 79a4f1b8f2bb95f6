"""The ``sdtheory`` command: one subcommand per job, one module per subcommand.

Argument parsing lives here only; each subcommand module turns its arguments into library
calls. Exit codes: 0 success, 1 a check or a solve failed (or the results could not be
written), 2 bad input (a one-line error naming the parameter, no traceback, no file written),
130 / 143 interrupted by SIGINT (Ctrl-C) / SIGTERM (one line, nothing written).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import warnings

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
        epilog="environment:\n  SDTHEORY_JAX_CACHE  folder of JAX's persistent compilation "
               "cache, so that a\n                      repeat run skips compilation (default "
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


class _Bar:
    """The progress display of a command on a terminal (:func:`sdtheory._progress.set_display`):
    the outermost progress of the job as one tqdm bar (count, rate, time left), erased when it
    completes (the job then reports its summary line)."""

    def __init__(self, prefix: str, stream):
        self.prefix, self.stream = prefix, stream
        self.owner, self.bar = None, None

    def start(self, progress) -> bool:
        if not progress.total:
            return False
        if self.owner is not None:
            # the same steps counted finer inside (one task of all the cells): draw those
            same = (self.owner.done == 0 and self.owner.total == progress.total
                    and self.owner.what == progress.what)
            if not same:
                return False
            self.close()
        from tqdm import tqdm

        self.owner = progress
        self.bar = tqdm(total=progress.total, desc=self.prefix + progress.what + "s",
                        unit=f" {progress.what}", file=self.stream, leave=False,
                        dynamic_ncols=True)
        return True

    def step(self, progress, n: int, message: str) -> None:
        if progress is not self.owner:      # handed over to a finer count of the same steps
            return
        self.bar.update(n)
        if progress.done >= progress.total:
            self.close()            # the job reports its own summary line

    def write(self, line: str) -> None:
        """A report line above the bar (or plainly when no bar is drawn)."""
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.owner, self.bar = None, None


class _BarHandler(logging.StreamHandler):
    """Report lines written above the progress bar, so that the bar stays one line."""

    def __init__(self, bar: _Bar):
        super().__init__(bar.stream)
        self.bar_display = bar

    def emit(self, record):
        try:
            self.bar_display.write(self.format(record))
        except Exception:  # noqa: BLE001 - logging's own policy for a failed emit
            self.handleError(record)


class _Progress:
    """Progress of the library (loggers under "sdtheory", INFO) on stderr while a command
    runs; removed again afterwards (the library itself never installs a handler). On a
    terminal, the outermost progress of the job is one bar (:class:`_Bar`) and the other report
    lines are written above it."""

    def __init__(self, command: str, quiet: bool):
        from sdtheory._progress import set_display

        self.set_display = set_display
        self.logger = logging.getLogger("sdtheory")
        self.prefix = f"sdtheory {command}: "
        self.bar = _Bar(self.prefix, sys.stderr) if not quiet and sys.stderr.isatty() else None
        self.handler = (_BarHandler(self.bar) if self.bar is not None
                        else logging.StreamHandler(sys.stderr))
        self.handler.setFormatter(logging.Formatter(self.prefix + "%(message)s"))
        self.handler.setLevel(logging.WARNING if quiet else logging.INFO)
        self.level = self.logger.level

    def __enter__(self):
        self.logger.addHandler(self.handler)
        if self.logger.getEffectiveLevel() > logging.INFO:
            self.logger.setLevel(logging.INFO)
        self.showwarning, warnings.showwarning = warnings.showwarning, self.warning
        self.display = self.set_display(self.bar)
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        self.set_display(self.display)
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)
        warnings.showwarning = self.showwarning

    def warning(self, message, category, filename, lineno, file=None, line=None):
        """A warning in one line on stderr (Python prints the source line under it). A
        damaged entry of JAX's compilation cache (JAX warns, compiles again and keeps the
        entry) is removed, so that the next run stores a sound one."""
        text = str(message).strip().splitlines()[0] if str(message).strip() else ""
        removed = _remove_damaged_cache_entry(text)
        if removed:
            text = (f"a damaged entry of JAX's compilation cache was compiled again and "
                    f"removed ({removed})")
        print(f"{self.prefix}warning: {category.__name__}: {text}", file=sys.stderr)


def _remove_damaged_cache_entry(text: str) -> str | None:
    """For JAX's warning "Error reading persistent compilation cache entry for 'NAME'", remove
    the cache's files NAME-*-cache (the cache keeps no other index; they compile again) and
    return the removed path pattern; None for any other warning."""
    import glob
    import re

    found = re.match(r"Error reading persistent compilation cache entry for '([^'/]+)'", text)
    cache = _jax_cache()
    if not found or not cache:
        return None
    pattern = os.path.join(cache, f"{found.group(1)}-*-cache")
    for path in glob.glob(pattern):
        with contextlib.suppress(OSError):
            os.remove(path)
    return pattern


def _raised_in_jax(err: BaseException) -> bool:
    """Whether ``err`` was raised inside JAX's own code (the innermost frame of its traceback,
    complete since the command turns JAX's traceback filtering off)."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    parts = os.path.normpath(tb.tb_frame.f_code.co_filename).split(os.sep) if tb else []
    return "jax" in parts or "jaxlib" in parts


def _jax_cache() -> str | None:
    """The folder of JAX's persistent compilation cache in use, or None."""
    jax = sys.modules.get("jax")
    return jax.config.jax_compilation_cache_dir if jax is not None else None


def _setup_jax() -> None:
    """float64, and JAX's persistent compilation cache (a repeat run skips compilation)."""
    from sdtheory._x64 import configure_process

    configure_process()


def command() -> None:
    """The console entry point (``sdtheory`` and ``python -m sdtheory``): :func:`main`'s exit
    code, the process ending like any Python program (exit handlers, profilers and tracers
    run). Outside :func:`main` (before it installs its handlers, after it has returned) a
    signal is ignored: the command has not begun or has ended, and exits with its own code."""
    for s in INTERRUPTS:
        signal.signal(s, signal.SIG_IGN)
    sys.exit(main())


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: raised in the main thread, so that every ``finally`` and
    ``with`` on the way out runs (staged outputs removed, Dask workers closed)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_raise():
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` (once: a second signal
    during the clean-up is ignored, so the clean-up finishes); the previous handlers are
    restored afterwards. Only in the main thread (elsewhere Python cannot install handlers).

    A signal that arrives while JAX runs (its Python code, or XLA's compiler, which checks for
    signals itself) is raised as soon as control is back outside JAX, polled every
    :data:`POLL_S` seconds: an interrupt raised inside XLA's compilation left the process to
    crash at exit (exit 139 in 3 of 3 tries)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def ignore(signum, frame):
        pass

    def raise_outside_jax(frame):
        if _in_jax(frame):
            signal.setitimer(signal.ITIMER_REAL, POLL_S)
            return
        signal.signal(signal.SIGALRM, ignore)
        raise Interrupted(pending[0])

    def handler(signum, frame):
        for s in INTERRUPTS:
            signal.signal(s, ignore)
        pending.append(signum)
        raise_outside_jax(frame)

    def alarm(signum, frame):
        raise_outside_jax(frame)

    previous = {s: signal.signal(s, handler) for s in INTERRUPTS}
    previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, alarm)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for s, h in previous.items():
            signal.signal(s, h)


POLL_S = 0.05
"""Seconds between two looks whether a deferred interrupt can be raised (outside JAX)."""


def _in_jax(frame) -> bool:
    """Whether a frame of the stack ending in ``frame`` runs JAX's own code."""
    roots = tuple(os.path.dirname(m.__file__) + os.sep for m in
                  (sys.modules.get("jax"), sys.modules.get("jaxlib")) if m is not None)
    if not roots:
        return False
    while frame is not None:
        if frame.f_code.co_filename.startswith(roots):
            return True
        frame = frame.f_back
    return False


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sdtheory`` command; returns the exit code."""
    from sdtheory._io import COMMITTED

    COMMITTED.clear()
    with interrupts_raise():
        try:
            return _main(argv)
        except KeyboardInterrupt as err:
            signum = getattr(err, "signum", signal.SIGINT)
            what = (f"the results were already written to {COMMITTED[-1]}" if COMMITTED
                    else "nothing written")
            print(f"sdtheory{args_command(argv)}: interrupted; {what}", file=sys.stderr)
            return 128 + int(signum)


def args_command(argv: list[str] | None) -> str:
    """" COMMAND" of a command line (for messages before its arguments are parsed), or ""."""
    words = sys.argv[1:] if argv is None else argv
    return next((f" {w}" for w in words if w in SUBCOMMANDS), "")


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(f"sdtheory.cli.{args.command}")
    from sdtheory._io import WriteFailed
    from sdtheory.executors import TasksFailed

    try:
        _setup_jax()
        with _Progress(args.command, args.quiet):
            return module.run(args)
    # a task failed (results are written only when every task succeeded), or a write failed
    # (a full disk, a vanished folder: the staging is gone)
    except (TasksFailed, WriteFailed) as err:
        print(f"sdtheory {args.command}: failed, nothing written: {err}", file=sys.stderr)
        return EXIT_FAIL
    except (AssertionError, TypeError) as err:
        cache = _jax_cache()
        if not cache or not _raised_in_jax(err):
            raise                      # a fault of sdtheory's own: the traceback is the report
        # measured: a compiled program stored under another program's key fails inside JAX
        # with AssertionError (output counts) on every run, until the entry is removed
        print(f"sdtheory {args.command}: failed, nothing written: {type(err).__name__}: "
              f"{str(err).splitlines()[0] if str(err) else ''}; JAX's compilation cache may "
              f"hold a damaged program: clear it (rm -rf {cache}) and run again",
              file=sys.stderr)
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
    from sdtheory.noise import KINDS

    g = p.add_argument_group("label noise (docs/theory.md section 6)")
    g.add_argument("--noise", choices=KINDS, default="sym",
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


def refuse_unused(args, rules) -> None:
    """Refuse an option given (a value other than its default) where it does not apply.

    Args:
      rules: (dest, default, applies, where) tuples: the option ``--dest`` with its default;
        whether it applies to this run; where it applies, for the message.
    """
    for dest, default, applies, where in rules:
        if not applies and getattr(args, dest) != default:
            raise UsageError(f"--{dest.replace('_', '-')} applies to {where} only; it is not "
                             "used here (drop it)")


def problem_config(args, cls=None, **extra):
    """The :class:`~sdtheory.problem.ProblemConfig` (or subclass ``cls``) of parsed options."""
    from sdtheory.problem import ProblemConfig, load_counts

    refuse_unused(args, [
        ("e", 0.0, args.model == "superclass", "--model superclass"),
        ("classes_per_superclass", 2, args.model == "superclass", "--model superclass"),
        ("dim", 2000, args.model == "gmm", "--model gmm"),
    ])
    if args.counts and args.sampled:
        raise UsageError("--sampled does not apply to --counts: the count matrix fixes the "
                         "given labels (drop --sampled)")
    cls = cls or ProblemConfig
    return cls(model=args.model, K=args.K, n=args.n, c=args.c, d=args.d, e=args.e,
               classes_per_superclass=args.classes_per_superclass, dim=args.dim,
               jitter=args.jitter, lam=args.lam, noise=args.noise, eta=args.eta,
               counts=load_counts(args.counts) if args.counts else None, sampled=args.sampled,
               seed=args.seed, **extra)


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
