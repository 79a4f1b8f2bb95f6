"""Results files are written whole or not at all: each file through a temporary file beside
the target, then a rename (:func:`atomic_write`); a command's whole set of files through a
staging folder beside the output folder, moved into place once every file exists
(:class:`Outputs`)."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable

import numpy as np

__all__ = ["Outputs", "WriteFailed", "atomic_write", "jsonable", "write_json", "write_text"]


def jsonable(obj, *, nonfinite: str = "null"):
    """JSON-ready copy: numpy scalars and arrays to Python, dict keys to str.

    Args:
      obj: nested dicts / lists / tuples / arrays / scalars.
      nonfinite: what becomes of inf and nan: ``"null"`` (None) or ``"str"`` ("inf", "nan").
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v, nonfinite=nonfinite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, nonfinite=nonfinite) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), nonfinite=nonfinite)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isfinite(x):
            return x
        return None if nonfinite == "null" else str(x)
    return obj


def atomic_write(path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it onto ``path``.

    The file gets the usual umask permissions (mkstemp creates 0600); on any error the temporary
    file is removed and nothing is left at ``path``.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    stem, suffix = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".tmp-{stem}-", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path, text: str) -> None:
    """Atomically write ``text`` to ``path``."""

    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write(text)

    atomic_write(path, write)


def write_json(path, doc, *, indent: int | None = 1) -> None:
    """Atomically write ``doc`` as JSON (newline-terminated) to ``path``."""
    write_text(path, json.dumps(doc, indent=indent) + "\n")


class WriteFailed(RuntimeError):
    """The results could not be written (a full disk, a folder removed meanwhile); what was
    staged has been removed, nothing is left in the output folder."""


FILE_BYTES = 4 * 2 ** 20
"""Free space asked for per output file before computing: more than any file of the commands
(the largest PNGs are about 0.3 MB; CSVs and JSONs of the largest sweeps a few MB)."""

COMMITTED: list[str] = []
"""Output folders whose files were moved into place in this process (for the message of an
interrupt that comes afterwards)."""

_STAGE_PREFIX = ".sdtheory-staging-"


class Outputs:
    """The output files of one command: all of them, or none.

    Constructed before any computation, it checks every output path (the folder exists or can
    be created and is writable, no output name is taken by a folder or a read-only file, and
    the disk has :data:`FILE_BYTES` free per file); a bad path raises ValueError with one line.
    Inside ``with outputs:`` each file is written to :meth:`path`, a staging folder beside the
    output folder; leaving the block normally moves every file into place (after checking
    that each named file exists), leaving it by an exception or an interrupt removes the
    staging folder. An OSError inside the block becomes :class:`WriteFailed`.

    Args:
      out_dir: the output folder (created when the files are moved into place).
      names: the file names the command writes (more may be written, e.g. by ``figures``).
      option: the option that named the folder, for messages.
      nbytes: free space to ask for (default :data:`FILE_BYTES` per name).
    """

    def __init__(self, out_dir, names: Iterable[str] = (), *, option: str = "--out",
                 nbytes: int | None = None):
        from sdtheory._validate import check_out_dir, existing_parent

        self.out = os.fspath(out_dir)
        self.names = list(names)
        self.option = option
        check_out_dir(self.out, option)
        for name in self.names:
            target = os.path.join(self.out, name)
            if os.path.isdir(target):
                raise ValueError(f"{option} {self.out!r}: the output {name!r} is a folder; "
                                 "remove or rename it")
            if os.path.lexists(target) and not os.access(target, os.W_OK):
                raise ValueError(f"{option} {self.out!r}: the output {name!r} exists and "
                                 "cannot be replaced (read-only or immutable)")
        need = FILE_BYTES * max(1, len(self.names)) if nbytes is None else nbytes
        self.home = existing_parent(os.path.dirname(os.path.abspath(self.out)))
        free = shutil.disk_usage(self.home).free
        if free < need:
            raise ValueError(f"{option} {self.out!r}: {free / 2 ** 20:.1f} MiB free on its "
                             f"disk, the results need up to {need / 2 ** 20:.0f} MiB")
        self.stage: str | None = None
        self.cancelled = False

    def folder(self) -> str:
        """The staging folder (made on first use): write the outputs into it."""
        if self.stage is None:
            self.stage = tempfile.mkdtemp(dir=self.home, prefix=_STAGE_PREFIX)
        return self.stage

    def path(self, name: str) -> str:
        """Where to write the output file ``name`` (inside the staging folder)."""
        return os.path.join(self.folder(), name)

    def discard(self) -> None:
        """Give up: nothing of what was staged will be moved into place."""
        self._discard()
        self.cancelled = True

    def final(self, name: str) -> str:
        """The path that the output file ``name`` will have."""
        return os.path.join(self.out, name)

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, kind, err, tb) -> None:
        if kind is None and not self.cancelled:
            try:
                self._commit()
                return
            except OSError as e:
                kind, err = type(e), e
            finally:
                self._discard()
        self._discard()
        if issubclass(kind, OSError):
            where = os.path.basename(err.filename) if getattr(err, "filename", None) else ""
            where = self.final(where) if where and not where.startswith(".") else self.out
            raise WriteFailed(f"cannot write {where}: {err.strerror or err}") from None

    def _discard(self) -> None:
        if self.stage is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            self.stage = None

    def _commit(self) -> None:
        stage = self.stage
        if stage is None:
            os.makedirs(self.out, exist_ok=True)
            return
        missing = [n for n in self.names if not os.path.exists(os.path.join(stage, n))]
        if missing:
            raise RuntimeError(f"outputs never written: {', '.join(missing)}")
        with _interrupts_held():
            if not os.path.exists(self.out) or not os.listdir(self.out):
                # a new (or empty) folder: one rename puts every file into place at once
                os.makedirs(os.path.dirname(os.path.abspath(self.out)), exist_ok=True)
                os.chmod(stage, 0o777 & ~_umask())
                if os.path.isdir(self.out):
                    os.rmdir(self.out)
                os.rename(stage, self.out)
                self.stage = None
            else:
                for name in sorted(os.listdir(stage)):
                    os.replace(os.path.join(stage, name), os.path.join(self.out, name))
            COMMITTED.append(self.out)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


class _interrupts_held:
    """SIGINT and SIGTERM ignored while the files are moved into place (the move is then
    complete; the main thread only: elsewhere signals cannot be handled)."""

    def __enter__(self):
        self.saved = {}
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self.saved[s] = signal.signal(s, signal.SIG_IGN)

    def __exit__(self, *exc):
        for s, h in self.saved.items():
            signal.signal(s, h)
