"""``sdtheory verify``: the numerical checks of the theory, as a table."""

from __future__ import annotations

import json

from sdtheory.cli import EXIT_FAIL, EXIT_OK, Formatter, UsageError, add_executor_options


def add_parser(sub) -> None:
    p = sub.add_parser("verify", formatter_class=Formatter,
                       help="numerical checks of every theorem; table of pass/fail with margins",
                       description="Turn each statement of the theory (docs/theory.md) into a "
                                   "numerical experiment over a grid of parameters and print one "
                                   "row per check: cases tried and passed, the worst margin and "
                                   "the first counter-example. Exit 0 only if all pass.")
    p.add_argument("--quick", action="store_true", help="small grids (for CI, a few seconds)")
    p.add_argument("--only", metavar="NAME", action="append", default=None,
                   help="run only the named check (repeatable; see --list)")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.add_argument("--out", metavar="DIR", default=None, help="also write verify.json into DIR")
    add_executor_options(p)


def run(args) -> int:
    """0 if every check passed, 1 if some check failed, 2 for bad input."""
    from sdtheory._io import Outputs, write_text
    from sdtheory.jobs.verify import checks, format_table, results_to_json
    from sdtheory.jobs.verify import run as run_checks

    registry = checks()
    only = args.only
    if only:
        unknown = [n for n in only if n not in registry]
        if unknown:
            raise UsageError(f"unknown check {unknown[0]!r}; known checks: "
                             f"{', '.join(registry)}")
    if args.list:
        w = max(len(n) for n in registry)
        for name, chk in registry.items():
            if not only or name in only:
                print(f"{name:<{w}}  {chk.statement}")
        return EXIT_OK
    from sdtheory.executors import check_executor

    check_executor(args.executor, args.workers, args.scheduler)
    outputs = Outputs(args.out, ["verify.json"]) if args.out is not None else None
    results = run_checks(only or None, quick=args.quick, executor=args.executor,
                         workers=args.workers, scheduler=args.scheduler)
    payload = results_to_json(results, quick=args.quick)
    print(json.dumps(payload, indent=2) if args.json else format_table(results))
    if outputs is not None:
        with outputs:
            write_text(outputs.path("verify.json"), json.dumps(payload, indent=2) + "\n")
    return EXIT_OK if payload["ok"] else EXIT_FAIL
