"""Lowered Newton programs kept on disk (``jax.export``), so that a new process skips tracing.

JAX's persistent compilation cache (switched on by :func:`sdtheory._x64.configure_process`)
skips XLA's compilation in a repeat run, but every new process still traces and lowers each
Newton program in Python first: 0.5 to 1 s for the dense program when it used jax's GMRES
(0.4 to 0.5 s with the project's own), and some 4 s over the 8 group programs of
``sdtheory verify`` (profiled, machine of benchmarks/README.md). Loading a stored program
instead took a cold full N = 2000 run from 4.2-5.6 s (median 5.1 s) to 4.3-4.9 s (median
4.5 s), alternating runs. The store keeps each program as ``jax.export`` serialises it
(StableHLO), under a key of everything the trace depends on:

* the program's name and the source of the modules traced into it (``sources``);
* the versions of sdtheory, jax and jaxlib, the default backend and the float64 switch;
* the tree structure of the arguments (with the problem's static settings) and the shape,
  dtype and weak type of every array leaf.

A stored program is the same StableHLO as the one traced in process, so its results are the
same bits (tests/test_program_store.py compares them). The store is off unless a directory is
set (:func:`use_directory`; the ``sdtheory`` command and every Dask worker use
``$SDTHEORY_JAX_CACHE/programs``); library users get plain ``jax.jit``. Anything that goes wrong
with the store (an unwritable directory, a damaged file, a program that cannot be exported)
costs only the time it was meant to save: the plain jitted function runs instead. Batches
sharded over several local devices, and feature problems that count their CG iterations (a
host callback), are not stored.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["use_directory", "directory", "call_stored", "STATS"]

log = logging.getLogger(__name__)

_DIR: Path | None = None
_MEMO: dict = {}
STATS = {"loaded": 0, "exported": 0, "failed": 0}
"""Programs loaded from the store, exported into it, and failures (fell back to jax.jit) in
this process."""


def use_directory(path: str | os.PathLike | None) -> None:
    """Keep lowered programs in ``path`` (created if missing); None turns the store off."""
    global _DIR
    _DIR = None if path is None else Path(path)
    _MEMO.clear()


def directory() -> Path | None:
    """The store's directory, or None when it is off."""
    return _DIR


def _source_digest(sources: Sequence[str]) -> str:
    h = hashlib.sha256()
    for src in sources:
        h.update(Path(src).read_bytes())
    return h.hexdigest()


def _signature(leaf) -> tuple:
    """Shape, dtype and weak type of one argument leaf: what a traced program depends on."""
    import jax

    aval = jax.typeof(leaf)
    return aval.shape, str(aval.dtype), aval.weak_type


def _key(name: str, sources: Sequence[str], treedef, signatures) -> str:
    """The file key of a program: its name, traced sources, versions, backend, float64
    switch, argument tree and leaf signatures (:func:`_signature`)."""
    import jax
    import jaxlib

    from sdtheory import __version__

    parts = [name, _source_digest(sources), __version__, jax.__version__, jaxlib.__version__,
             jax.default_backend(), str(bool(jax.config.jax_enable_x64)), str(treedef)]
    parts += [f"{shape}:{dtype}:{int(weak)}" for shape, dtype, weak in signatures]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def call_stored(name: str, fn: Callable, args: tuple, *, sources: Sequence[str]):
    """``fn(*args)``, run by the stored program of ``fn`` for arguments shaped like ``args``:
    loaded from the store, or traced, exported into the store and loaded. Without a store (or
    if it fails), by ``fn`` itself.

    Args:
      name: the program's name (part of the key and of the file name).
      fn: the jitted function.
      args: its arguments (their tree structure and leaf types make the key).
      sources: files whose text is traced into the program (part of the key).
    """
    if _DIR is None:
        return fn(*args)
    import jax

    leaves, treedef = jax.tree_util.tree_flatten(args)
    signatures = tuple(_signature(leaf) for leaf in leaves)
    memo = (name, treedef, signatures)
    if memo not in _MEMO:
        def plain(*flat):
            return fn(*jax.tree_util.tree_unflatten(treedef, flat))

        try:
            _MEMO[memo] = _load_or_export(name, plain, sources, treedef, signatures, leaves)
        except Exception as err:  # noqa: BLE001 - the store is an optimisation, never a failure
            STATS["failed"] += 1
            log.debug("program store: %s not stored (%s: %s)", name, type(err).__name__, err)
            _MEMO[memo] = plain
    return _MEMO[memo](*leaves)


def _load_or_export(name, plain, sources, treedef, signatures, leaves):
    import jax
    from jax import export

    path = _DIR / f"{name}-{_key(name, sources, treedef, signatures)}.jaxexport"
    exported = None
    if path.exists():
        try:
            exported = export.deserialize(bytearray(path.read_bytes()))
            STATS["loaded"] += 1
        except Exception as err:  # noqa: BLE001 - a damaged file is replaced below
            log.debug("program store: %s unreadable (%s), exported again", path, err)
    if exported is None:
        path.parent.mkdir(parents=True, exist_ok=True)    # before tracing: fails fast
        exported = export.export(jax.jit(plain))(*leaves)
        blob = exported.serialize()
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)                   # atomic: a concurrent reader sees all or none
        STATS["exported"] += 1
    return jax.jit(exported.call)
