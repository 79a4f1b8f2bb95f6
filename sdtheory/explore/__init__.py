"""``sdtheory explore``: phase diagrams to click, in the browser and in Jupyter.

``sdtheory explore`` serves the page on 127.0.0.1 (:func:`serve`); in a notebook
``sd.explore()`` shows the same page inline (:func:`explore`). Both need the ``explore`` extra
(``pip install 'sdtheory[explore]'``: Panel and Bokeh, which serve their scripts themselves,
so the served page works offline; a notebook loads them from their CDN unless
``pn.extension(inline=True)`` came first). The computations are those of ``sdtheory phase``
and ``sdtheory simulate`` (:mod:`sdtheory.explore.jobs`, which imports no web library).
"""

from __future__ import annotations

__all__ = ["explore", "serve", "free_port", "import_panel"]


def import_panel():
    """The ``panel`` module, or an ImportError that says how to install it."""
    try:
        import panel as pn
    except ImportError:
        raise ImportError("sdtheory explore needs Panel: pip install 'sdtheory[explore]'") \
            from None
    return pn


def explore(**values):
    """The explorer for a Jupyter notebook (display the returned object; call
    ``sd.enable_x64()`` first). ``values``: first values of the form's fields
    (:data:`sdtheory.explore.jobs.DEFAULTS`, e.g. ``K=3, solver="exact"``)."""
    from sdtheory._x64 import require_x64

    require_x64("sdtheory.explore")
    pn = import_panel()
    pn.extension()
    from sdtheory.explore.app import Explorer

    return Explorer(**values).layout()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve(host: str = "127.0.0.1", port: int | None = None, show: bool = True, **values):
    """Serve the explorer at http://HOST:PORT/ until interrupted (one page per browser
    session; ``port`` None: a free one). Prints the address on stdout."""
    pn = import_panel()
    from sdtheory.explore.app import Explorer

    port = free_port(host) if port is None else port
    server = pn.serve({"/": lambda: Explorer(**values).layout()}, address=host, port=port,
                      show=show, title="sdtheory explore", websocket_origin=[f"{host}:{port}"],
                      threaded=False, verbose=False, start=False)
    # listening now (a port in use has raised): the address, then the loop until Ctrl-C
    print(f"sdtheory explore: serving http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    server.start()
    server.io_loop.start()
