"""``sdtheory explore``: the phase diagram and cell views as a local web page."""

from __future__ import annotations

from sdtheory.cli import EXIT_OK, Formatter, UsageError

DESCRIPTION = """\
Serve a local web page that draws the phase diagram of `sdtheory phase` as its controls change
(model, noise, solver, axes, quantity) and shows, for a clicked cell, the rounds of `sdtheory
simulate` (exact and linearised, the PLL student, Delta, a_j, r*; for K = 3 the group outputs on
the simplex). Every view shows the command that regenerates it and offers its files for
download. Needs the explore extra: pip install 'sdtheory[explore]'. Every script of the page is
served by this process: no network is needed. In Jupyter: sd.explore()."""


def add_parser(sub) -> None:
    p = sub.add_parser("explore", formatter_class=Formatter, description=DESCRIPTION,
                       help="interactive phase diagrams and cells in the browser")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (another than 127.0.0.1 exposes the page to "
                        "the network)")
    p.add_argument("--port", type=int, default=None,
                   help="TCP port in [1, 65535] (default: a free one)")
    p.add_argument("--no-browser", action="store_true",
                   help="do not open the page in the web browser")


def run(args) -> int:
    from sdtheory._validate import as_int
    from sdtheory.explore import import_panel, serve

    if args.port is not None:
        as_int(args.port, "--port", lo=1, hi=65535)
    try:
        import_panel()
    except ImportError as err:
        raise UsageError(str(err)) from None
    try:
        serve(host=args.host, port=args.port, show=not args.no_browser)
    except OSError as err:          # a port in use, an address not of this machine
        raise UsageError(f"--host/--port: cannot listen on {args.host}:{args.port}: "
                         f"{err.strerror or err}") from None
    return EXIT_OK
