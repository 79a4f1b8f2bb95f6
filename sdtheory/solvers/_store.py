"""Compiled Newton programs kept on disk, so that a new process neither traces nor compiles.

Every new process would trace and lower each Newton program in Python: 0.4 to 0.5 s for the
dense program, some 4 s over the 8 group programs of ``sdtheory verify`` (profiled, machine of
benchmarks/README.md). JAX's persistent compilation cache (switched on by
:func:`sdtheory._x64.configure_process`) skips only XLA's compilation, after the lowering it
computes its key from. The store keeps each program as XLA compiled it
(``jax.experimental.serialize_executable``) and loads it back without tracing, lowering or
compiling. Under a key of everything the compiled program depends on:

* the program's name and the source of the modules traced into it (``sources``);
* the versions of sdtheory, jax and jaxlib, the backend and its devices, the float64 switch,
  ``XLA_FLAGS``, and the CPU (model and instruction-set flags: XLA compiles for the host's);
* the tree structure of the arguments (with the problem's static settings) and the shape,
  dtype and weak type of every array leaf.

A stored program is the program compiled in process, so its results are the same bits
(tests/test_program_store.py compares them). The store is off unless a directory is set
(:func:`use_directory`; the ``sdtheory`` command and every Dask worker use
``$SDTHEORY_JAX_CACHE/programs``); library users get plain ``jax.jit``. Like JAX's own
compilation cache, the store trusts its folder: a loaded file is unpickled and run. Anything
that goes wrong with the store (an unwritable directory, a damaged file, a program that cannot
be serialised, a loaded program whose first run fails) costs only the time it was meant to
save: the plain jitted function runs instead. Batches sharded over several local devices, and
feature problems that count their CG iterations (a host callback), are not stored.

Two things a stored executable needs that a traced program gets for free (both measured, with
jax 0.10.2 on the CPU; tests/test_program_store.py covers each):

* a program that calls LAPACK needs JAX's LAPACK kernels initialised, which JAX does when it
  lowers such a program: loaded without it, a group program crashed the process
  (:func:`_check_custom_calls`);
* it must be compiled afresh: an executable that JAX's persistent compilation cache served,
  serialised again, loaded in a new process and then failed to run. The store's compilation
  has a name of its own, so that cache never serves it.

The store used to keep the lowered program (``jax.export``) instead. A cold full N = 2000 run
(10 rounds) then spent about 0.35 s loading it (the lowering of the loaded program, its key
in JAX's cache, XLA's deserialisation) and 0.25 to 0.4 s importing scipy.linalg (any exported
program initialises JAX's LAPACK kernels, which take their routines from it; the dense program
now calls no LAPACK routine): benchmarks/README.md.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import platform
import re
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["use_directory", "directory", "call_stored", "STATS"]

log = logging.getLogger(__name__)

_DIR: Path | None = None
_MEMO: dict = {}
STATS = {"loaded": 0, "stored": 0, "failed": 0}
"""Programs loaded from the store, stored into it, and failures (fell back to jax.jit) in
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


_FORMAT = "serialize_executable-1"
"""Part of every key: files of another layout are never read."""


@functools.cache
def _machine() -> str:
    """The CPU a compiled program was built for: architecture, model name and instruction-set
    flags (from /proc/cpuinfo where it exists)."""
    lines = [platform.machine(), platform.processor()]
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("model name", "flags", "Features", "CPU part")):
                    lines.append(line.strip())
                if not line.strip() and len(lines) > 2:     # the first processor is enough
                    break
    except OSError:
        pass
    return "\n".join(lines)


def _key(name: str, sources: Sequence[str], treedef, signatures) -> str:
    """The file key of a program: its name, traced sources, versions, backend and devices,
    float64 switch, XLA flags, CPU, argument tree and leaf signatures (:func:`_signature`)."""
    import jax
    import jaxlib

    from sdtheory import __version__

    device = jax.devices()[0]
    parts = [_FORMAT, name, _source_digest(sources), __version__, jax.__version__,
             jaxlib.__version__, jax.default_backend(), device.device_kind,
             str(jax.device_count()), os.environ.get("XLA_FLAGS", ""), _machine(),
             str(bool(jax.config.jax_enable_x64)), str(treedef)]
    parts += [f"{shape}:{dtype}:{int(weak)}" for shape, dtype, weak in signatures]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def call_stored(name: str, fn: Callable, args: tuple, *, sources: Sequence[str]):
    """``fn(*args)``, run by the stored program of ``fn`` for arguments shaped like ``args``:
    loaded from the store, or traced, compiled and stored. Without a store (or if it fails),
    by ``fn`` itself.

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

    def plain(*flat):
        return fn(*jax.tree_util.tree_unflatten(treedef, flat))

    if memo not in _MEMO:
        try:
            _MEMO[memo] = _load_or_store(name, plain, sources, treedef, signatures, leaves)
        except Exception as err:  # noqa: BLE001 - the store is an optimisation, never a failure
            STATS["failed"] += 1
            log.debug("program store: %s not stored (%s: %s)", name, type(err).__name__, err)
            _MEMO[memo] = (plain, None)
    program, loaded_from = _MEMO[memo]
    if loaded_from is None:
        return program(*leaves)
    # The first run of a loaded program: a runtime error there (a file that loads but does
    # not run) costs only time; the file is removed and the plain function runs instead.
    try:
        out = jax.block_until_ready(program(*leaves))
    except jax.errors.JaxRuntimeError as err:
        STATS["failed"] += 1
        log.debug("program store: %s failed to run (%s), removed", loaded_from, err)
        loaded_from.unlink(missing_ok=True)
        _MEMO[memo] = (plain, None)
        return plain(*leaves)
    _MEMO[memo] = (program, None)
    return out


def _custom_calls(compiled) -> set[str]:
    """The custom-call targets of a compiled program."""
    return set(re.findall(r'custom_call_target="([^"]+)"', compiled.as_text()))


def _check_custom_calls(targets: set[str]) -> bool:
    """Whether a program with these custom calls can be stored; returns whether it needs
    JAX's LAPACK kernels initialised first (:func:`_initialise_lapack`). XLA's own targets
    (``__cublas$gemm``, ...) need nothing; JAX's CPU LAPACK kernels (``lapack_*``) need their
    routines, which they take from scipy.linalg when a program calling them is lowered: a
    loaded program was never lowered in this process, and ran into a segmentation fault
    (measured). Any other target is refused (the program runs by ``jax.jit``)."""
    others = {t for t in targets if not t.startswith(("lapack_", "__"))}
    if others:
        raise ValueError(f"custom calls {sorted(others)} may need initialising")
    return any(t.startswith("lapack_") for t in targets)


def _initialise_lapack() -> None:
    """What JAX itself runs before it lowers a program that calls LAPACK on the CPU."""
    from jax._src.lax import linalg

    linalg.initialize_lapack()


def _load_or_store(name, plain, sources, treedef, signatures, leaves):
    """(program, path): the stored program and its file, or a program compiled now and
    stored (path None: it needs no trial run)."""
    import jax
    from jax.experimental import serialize_executable as se

    path = _DIR / f"{name}-{_key(name, sources, treedef, signatures)}.jaxexe"
    if path.exists():
        try:
            stored = pickle.loads(path.read_bytes())
            if stored["lapack"]:
                _initialise_lapack()
            devices = {d.id: d for d in jax.devices()}
            compiled = se.deserialize_and_load(
                stored["executable"], stored["in_tree"], stored["out_tree"],
                execution_devices=[devices[i] for i in stored["devices"]])
            STATS["loaded"] += 1
            return compiled, path
        except Exception as err:  # noqa: BLE001 - a damaged file is replaced below
            log.debug("program store: %s unreadable (%s), stored again", path, err)
    path.parent.mkdir(parents=True, exist_ok=True)        # before tracing: fails fast
    # A name of its own, so that JAX's persistent compilation cache never serves this
    # compilation: an executable read from that cache and serialised again loaded in a new
    # process but failed to run there ("Function broadcast_multiply_fusion.2 not found",
    # measured with jax 0.10.2 on the CPU). The name changes nothing in the program; the
    # compilation still leaves an entry in JAX's cache, which is never read.
    plain.__name__ = plain.__qualname__ = f"stored_{uuid.uuid4().hex}"
    compiled = jax.jit(plain).lower(*leaves).compile()
    executable, in_tree, out_tree = se.serialize(compiled)
    # the devices the program was compiled for (one: sharded batches are never stored)
    devices = sorted({d.id for sh in jax.tree_util.tree_leaves(compiled.input_shardings)
                      for d in sh.device_set})
    blob = pickle.dumps({"executable": executable, "in_tree": in_tree, "out_tree": out_tree,
                         "lapack": _check_custom_calls(_custom_calls(compiled)),
                         "devices": devices})
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)                       # atomic: a concurrent reader sees all or none
    STATS["stored"] += 1
    return compiled, None
