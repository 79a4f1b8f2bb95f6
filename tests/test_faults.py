"""Faults injected into real runs (docs/guide.md "Every command"; docs/guarantees.md): interrupts,
outputs that cannot be written, a full disk. Each asserts the exit code, the one line on
stderr, and that nothing is left behind.

The signal tests start ``python -m sdtheory`` as a separate process (without JAX's
compilation cache, so that every run compiles, the slowest case for an interrupt) and signal
it at a point of its run: during start-up, or once its first progress line is out. They are
marked slow (each a process start, a compilation and up to EXIT_LIMIT_S of waiting); the fast
set keeps an interrupt in this process: test_run_tasks_never_retries_an_interrupt (not retried
as a failed task) and test_interrupt_while_writing_leaves_nothing (exit 130, one line, nothing
left).
"""

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from sdtheory.cli import main
from sdtheory.executors import SerialExecutor, run_tasks
from tests.conftest import WORKERS

EXIT_LIMIT_S = 10.0 * WORKERS
"""Seconds from the signal to the process's end: the interrupt waits for the JAX call in
progress (a compilation takes seconds on a cold cache and a busy machine), then the clean-up
and the interpreter's exit. 10 s (docs/guarantees.md), times the number of pytest-xdist workers
that share the machine with the command: beside another worker's tests on two CPUs (and a
machine busy with more), two Ctrl-C in probe took 14.1 s."""


class _Run:
    """A ``python -m sdtheory`` subprocess whose stderr is collected line by line."""

    def __init__(self, args, cwd, *, quiet=False):
        env = dict(os.environ, SDTHEORY_JAX_CACHE="", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sdtheory", *(["--quiet"] if quiet else []), *args],
            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, timeout=120.0):
        t0 = time.monotonic()
        while not self.lines and time.monotonic() - t0 < timeout:
            assert self.proc.poll() is None, f"ended early: {self.lines}"
            time.sleep(0.05)
        assert self.lines, "no progress line"

    def signal(self, sig, *, again=False):
        """Send ``sig`` (twice, 0.2 s apart, with ``again``); the exit code and the seconds
        from the first signal to the end."""
        assert self.proc.poll() is None, f"ended before the signal: {self.lines}"
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        if again:
            time.sleep(0.2)
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=60)
        seconds = time.monotonic() - t0
        self.reader.join(timeout=5)
        return rc, seconds


def _left(folder):
    """Every path under ``folder`` (relative), hidden staging and temporary files included."""
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, dirs, files in os.walk(folder) for f in dirs + files)


def _assert_interrupted(run, rc, seconds, sig, command, tmp_path, *, one_line=False):
    assert rc == 128 + sig, (rc, run.lines)
    assert seconds < EXIT_LIMIT_S, seconds
    assert run.lines[-1] == f"sdtheory {command}: interrupted; nothing written", run.lines
    assert not any("Traceback" in ln or "retrying" in ln for ln in run.lines), run.lines
    if one_line:
        assert len(run.lines) == 1, run.lines
    assert _left(tmp_path) == [], _left(tmp_path)


PHASE = ["phase", "--x", "eta:0:0.74:150", "--y", "lam:1e-6:1e-2:81:log", "--out", "o"]


@pytest.mark.slow
def test_sigint_during_startup_of_phase(tmp_path):
    """Ctrl-C while the command starts (imports, JAX set-up): exit 130, one line."""
    run = _Run(PHASE, tmp_path, quiet=True)
    time.sleep(1.5)
    rc, seconds = run.signal(signal.SIGINT)
    _assert_interrupted(run, rc, seconds, signal.SIGINT, "phase", tmp_path, one_line=True)


@pytest.mark.slow
def test_sigint_during_phase_computation_is_not_retried(tmp_path):
    """Ctrl-C while the cells are computed: the interrupt is not retried as a failed task
    (it was: the run went on, wrote its files and exited 0)."""
    run = _Run(PHASE, tmp_path)
    run.wait_for_line()
    time.sleep(1.0)
    rc, seconds = run.signal(signal.SIGINT)
    _assert_interrupted(run, rc, seconds, signal.SIGINT, "phase", tmp_path)


@pytest.mark.slow
def test_sigterm_during_verify_quick(tmp_path):
    """SIGTERM in verify --quick (checks on the serial executor): exit 143, one line."""
    run = _Run(["verify", "--quick", "--out", "o"], tmp_path, quiet=True)
    time.sleep(6.0)
    rc, seconds = run.signal(signal.SIGTERM)
    _assert_interrupted(run, rc, seconds, signal.SIGTERM, "verify", tmp_path, one_line=True)


@pytest.mark.slow
def test_two_ctrl_c_during_probe(tmp_path):
    """Two Ctrl-C in probe (both were swallowed): exit 130 after the first, one line."""
    run = _Run(["probe", "--dataset", "digits", "--rounds", "2", "--out", "o"], tmp_path)
    run.wait_for_line()
    rc, seconds = run.signal(signal.SIGINT, again=True)
    _assert_interrupted(run, rc, seconds, signal.SIGINT, "probe", tmp_path)


@pytest.mark.slow
def test_ctrl_c_in_figures_stops_the_figure_made_beside(tmp_path):
    """Ctrl-C in figures while probe_digits is made by the second process: exit 130, one
    line, nothing left, and that process is gone."""
    psutil = pytest.importorskip("psutil")
    run = _Run(["figures", "--only", "min_rounds", "--only", "probe_digits", "--out", "o"],
               tmp_path)
    run.wait_for_line()
    children = psutil.Process(run.proc.pid).children(recursive=True)
    assert any("probe_digits" in " ".join(c.cmdline()) for c in children), children
    rc, seconds = run.signal(signal.SIGINT)
    _assert_interrupted(run, rc, seconds, signal.SIGINT, "figures", tmp_path)
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert alive == [], alive


@pytest.mark.slow
def test_sigterm_stops_local_dask_workers(tmp_path):
    """SIGTERM in probe on a local Dask cluster: exit 143, one line, and the worker
    processes are gone."""
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("distributed")
    run = _Run(["probe", "--dataset", "digits", "--executor", "local", "--workers", "2",
                "--out", "o"], tmp_path)
    run.wait_for_line()
    time.sleep(2.0)
    children = psutil.Process(run.proc.pid).children(recursive=True)
    assert children
    rc, seconds = run.signal(signal.SIGTERM)
    _assert_interrupted(run, rc, seconds, signal.SIGTERM, "probe", tmp_path)
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert alive == [], alive


def _interrupting(i):
    if i == 2:
        raise KeyboardInterrupt
    return i


def test_run_tasks_never_retries_an_interrupt():
    """An interrupt in a task ends run_tasks at once: no retry, no later task run."""
    ran = []

    def task(i):
        ran.append(i)
        return _interrupting(i)

    with pytest.raises(KeyboardInterrupt):
        run_tasks(SerialExecutor(), task, [(i,) for i in range(5)])
    assert ran == [0, 1, 2]


# ---- outputs: all or nothing


def _probe(feature_file, out, *extra):
    return main(["--quiet", "probe", "--features", str(feature_file), "--noise", "sym",
                 "--rates", "0.2", "--seeds", "0", "--rounds", "1", "--out", str(out), *extra])


def test_full_disk_at_a_png_leaves_nothing(feature_file, tmp_path, monkeypatch, capsys):
    """No space left when probe's PNG is written (after its CSV and JSON): exit 1, one line
    naming the file, and neither the CSV nor the JSON nor a staging folder is left."""
    import matplotlib.figure

    def full(self, fname, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fname))

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    out = tmp_path / "o"
    rc = _probe(feature_file, out)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith("sdtheory probe: failed, nothing written: cannot write "), err
    assert "No space left on device" in err[0]
    assert _left(tmp_path) == []


def test_interrupt_while_writing_leaves_nothing(feature_file, tmp_path, monkeypatch, capsys):
    """An interrupt while probe's files are written (the second PNG): exit 130, one line, no
    file and no temporary file left (it left .tmp-* files and the finished CSV/JSON)."""
    import matplotlib.figure

    real = matplotlib.figure.Figure.savefig
    calls = []

    def interrupted(self, fname, *args, **kwargs):
        calls.append(fname)
        if len(calls) == 2:
            with open(fname, "wb") as fh:          # half a file, then the signal
                fh.write(b"\x89PNG")
            raise KeyboardInterrupt
        return real(self, fname, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", interrupted)
    rc = _probe(feature_file, tmp_path / "o")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 130 and err == ["sdtheory probe: interrupted; nothing written"], err
    assert _left(tmp_path) == []


@pytest.mark.parametrize("blocked", ["probe_gain.png", "probe.json"])
def test_output_name_taken_by_a_folder_is_refused_first(feature_file, tmp_path, capsys,
                                                        blocked):
    """A folder in the place of an output: refused before computing (exit 2, one line naming
    it); the other outputs are not written (a folder probe_gain.png left probe.csv and
    probe.json after the whole computation and a traceback)."""
    out = tmp_path / "o"
    (out / blocked).mkdir(parents=True)
    rc = _probe(feature_file, out)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert f"the output '{blocked}' is a folder" in err[0]
    assert _left(tmp_path) == ["o", f"o/{blocked}"]


def test_too_little_free_space_is_refused_first(feature_file, tmp_path, monkeypatch, capsys):
    """Less free space than the outputs may need: refused before computing, exit 2."""
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda p: usage._replace(free=1024))
    rc = _probe(feature_file, tmp_path / "o")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "0.0 MiB free on its disk" in err[0], err
    assert _left(tmp_path) == []


def test_outputs_move_into_an_existing_folder_together(feature_file, tmp_path, capsys):
    """Into an existing folder with other files: the four outputs appear, the other files
    stay, no staging folder is left."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert _probe(feature_file, out) == 0
    capsys.readouterr()
    assert _left(tmp_path) == ["o", "o/keep.txt", "o/probe.csv", "o/probe.json",
                               "o/probe_correlation.png", "o/probe_gain.png"]


def test_read_only_result_file_is_refused_first(feature_file, tmp_path, capsys):
    """An existing output that cannot be replaced (read-only; immutable for root, who may
    write read-only files): refused before computing, exit 2, nothing else written (it gave a
    traceback after the whole computation)."""
    out = tmp_path / "o"
    out.mkdir()
    locked = out / "probe.json"
    locked.write_text("{}")
    if os.geteuid() == 0:
        made = subprocess.run(["chattr", "+i", str(locked)], capture_output=True)
        if made.returncode:
            pytest.skip(f"chattr +i is not permitted here: {made.stderr.decode().strip()}")
    else:
        locked.chmod(0o444)
    try:
        rc = _probe(feature_file, out)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(locked)], check=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "the output 'probe.json' exists and cannot be replaced" in err[0]
    assert _left(tmp_path) == ["o", "o/probe.json"]


def test_full_disk_in_figures_leaves_nothing(tmp_path, monkeypatch, capsys):
    """No space left when optimize_eta's PNG is written (after its JSON): exit 1, one line,
    no --out folder (optimize_eta.json was left)."""
    import matplotlib.figure

    def full(self, fname, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fname))

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    out = tmp_path / "figs"
    rc = main(["--quiet", "figures", "--only", "optimize_eta", "--quick", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert "failed, nothing written: cannot write" in err[0] and "No space left" in err[0]
    assert _left(tmp_path) == []


@pytest.mark.slow
def test_swapped_compilation_cache_entries_give_one_line(tmp_path):
    """Two entries of JAX's compilation cache swapped (each a valid program under the other's
    key): the next run failed with an AssertionError traceback inside JAX on every run; now
    one line naming the cache folder and how to clear it, exit 1, nothing written."""
    cache = tmp_path / "cache"
    env = dict(os.environ, SDTHEORY_JAX_CACHE=str(cache))
    sim = [sys.executable, "-m", "sdtheory", "--quiet", "simulate", "--K", "3", "--n", "5",
           "--rounds", "1", "--pll"]
    opt = [sys.executable, "-m", "sdtheory", "--quiet", "optimize", "--K", "3", "--n", "5",
           "--max-rounds", "1"]
    for cmd in (sim, opt):
        assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    newton = next(cache.glob("jit__newton_one-*-cache"))
    other = next(cache.glob("jit__neg_margin-*-cache"))      # optimize's margin
    a, b = newton.read_bytes(), other.read_bytes()
    newton.write_bytes(b)
    other.write_bytes(a)
    out = tmp_path / "o"
    run = subprocess.run(sim + ["--out", str(out)], env=env, capture_output=True, text=True)
    err = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert run.returncode == 1 and len(err) == 1, run.stderr
    assert f"clear it (rm -rf {cache})" in err[0] and not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["bit flip", "truncation"])
def test_damaged_compilation_cache_entry_gives_one_line_and_is_replaced(tmp_path, damage):
    """A bit-flipped or truncated entry of JAX's compilation cache: JAX warned in two lines,
    compiled again and kept the entry, so every later run warned again; now one warning line,
    the same results, the entry removed, and the next run is silent."""
    cache = tmp_path / "cache"
    env = dict(os.environ, SDTHEORY_JAX_CACHE=str(cache))
    sim = [sys.executable, "-m", "sdtheory", "--quiet", "simulate", "--K", "3", "--n", "5",
           "--rounds", "1", "--json"]
    first = subprocess.run(sim, env=env, capture_output=True, text=True)
    assert first.returncode == 0 and first.stderr == "", first.stderr
    entry = next(cache.glob("jit__newton_one-*-cache"))
    data = bytearray(entry.read_bytes())
    if damage == "bit flip":
        data[len(data) // 2] ^= 0x10
    else:
        data = data[: len(data) // 2]
    entry.write_bytes(bytes(data))
    second = subprocess.run(sim, env=env, capture_output=True, text=True)
    err = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert second.returncode == 0 and len(err) == 1, second.stderr
    assert "damaged entry of JAX's compilation cache" in err[0]
    assert not entry.exists() or entry.read_bytes() != bytes(data)
    assert json.loads(second.stdout) == json.loads(first.stdout)
    third = subprocess.run(sim, env=env, capture_output=True, text=True)
    assert third.returncode == 0 and third.stderr == "", third.stderr


def test_only_the_named_cache_entries_are_removed(tmp_path, monkeypatch):
    """The warning's entry name selects the files NAME-*-cache in the cache folder; other
    entries and other warnings are left alone."""
    from sdtheory import cli

    for name in ("jit_a-1-cache", "jit_a-2-cache", "jit_ab-3-cache", "jit_b-4-cache"):
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.setattr(cli, "_jax_cache", lambda: str(tmp_path))
    assert cli._remove_damaged_cache_entry("some other warning") is None
    text = ("Error reading persistent compilation cache entry for 'jit_a': error: Error -3 "
            "while decompressing data: incorrect data check")
    assert cli._remove_damaged_cache_entry(text) == str(tmp_path / "jit_a-*-cache")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jit_ab-3-cache", "jit_b-4-cache"]


def test_a_fault_of_sdtheory_is_not_blamed_on_the_compilation_cache(tmp_path, monkeypatch):
    """A TypeError raised in sdtheory's own code keeps its traceback: only an error raised
    inside JAX is reported as a possibly damaged compilation cache."""
    from sdtheory.cli import simulate as cli_simulate

    def broken(args):
        raise TypeError("a fault of sdtheory's own")

    monkeypatch.setenv("SDTHEORY_JAX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cli_simulate, "run", broken)
    with pytest.raises(TypeError, match="a fault of sdtheory's own"):
        main(["--quiet", "simulate", "--K", "3", "--n", "5"])


@pytest.mark.slow
def test_dense_problem_of_16000_samples_runs():
    """N = 16000 samples on the dense path (accepted by the memory check on a 24 GiB machine):
    the bundled OpenBLAS segfaulted (exit -11) in its two-thread Cholesky of G; large
    factorisations now run on one BLAS thread. The leading spectrum of the dense solver is
    computed in a child process, so that a crash fails this test instead of ending pytest."""
    code = (
        "import numpy as np\n"
        "from sdtheory.solvers.spectrum import leading_spectrum\n"
        "from sdtheory.models import two_level\n"
        "G = two_level(K=4, n=4000).dense() + 1e-3 * np.eye(16000)\n"
        "spec = leading_spectrum(G, 1.0 / (16000 * 1e-5), 4)\n"
        "print(spec['k'], spec['mu'][0], spec['mu_rest'])\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, (run.returncode, run.stderr[-400:])
    k, top, rest = run.stdout.split()
    # G is the block model plus 1e-3 I: its top eigenvalue is the global level's plus 1e-3
    from sdtheory.models import level_eigenvalues, two_level

    m = two_level(K=4, n=4000)
    mu1 = level_eigenvalues(4, 4000, m.c, m.d)["global"][0] + 1e-3
    assert int(k) >= 1 and abs(float(top) - mu1) <= 1e-8 * mu1
    assert 0 < float(rest) < 1.0
