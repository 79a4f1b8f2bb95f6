"""``sdtheory probe``: linear probing on real features (not built yet)."""

from __future__ import annotations

import sys

from sdtheory.cli import EXIT_USAGE, Formatter


def add_parser(sub) -> None:
    p = sub.add_parser("probe", formatter_class=Formatter,
                       help="real features (not built yet: says so and exits 2)",
                       description="Linear probing on real features: not built yet.")
    p.add_argument("--features", metavar="FILE", default=None,
                   help=".npz with arrays X (N x D) and y (N,); default: the bundled dataset")
    p.add_argument("--out", metavar="DIR", default=None, help="directory for results")


def run(args) -> int:
    print("sdtheory probe: not implemented yet", file=sys.stderr)
    return EXIT_USAGE
