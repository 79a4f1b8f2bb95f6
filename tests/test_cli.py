"""The sdtheory command: contract of DESIGN.md, exit codes, reference case end to end."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sdtheory.cli import build_parser, main
from tests.reference import public_vectors

REF = public_vectors()["block_k4_n120"]


def _run(*args):
    # buffered streams, as in a plain shell (PYTHONUNBUFFERED would hide a missing flush)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run([sys.executable, "-m", "sdtheory.cli", *args], capture_output=True,
                          text=True, timeout=300, env=env)


def test_simulate_json_reproduces_public_reference(tmp_path, capsys):
    """In-process through main() (the console entry point itself is the next tests')."""
    counts = tmp_path / "counts.json"
    counts.write_text(json.dumps(REF["counts"]))
    out = tmp_path / "out"
    rc = main(["simulate", "--K", "4", "--n", "120", "--c", "0.4", "--d", "0.1", "--lam", "1e-3",
               "--counts", str(counts), "--rounds", "4", "--pll", "--solver", "both", "--json",
               "--out", str(out)])
    r = capsys.readouterr()
    assert rc == 0, r.err
    doc = json.loads(r.out)
    assert doc["config"]["counts"] == REF["counts"] and doc["version"]
    assert json.loads((out / "result.json").read_text()) == doc
    for which, key in [("exact", "groups"), ("linear", "linear_groups")]:
        s = doc["solvers"][which]
        assert s["r_star"] == 1
        for rr, ref in zip(s["rounds"], REF["rounds"]):
            assert rr["round"] == ref["round"] and rr["residual"] <= 1e-10
            for g, gr in zip(rr["groups"], ref[key]):
                assert (g["true"], g["given"], g["count"]) == (gr["true"], gr["given"], gr["count"])
                np.testing.assert_allclose(g["p"], gr["p"], atol=1e-8, rtol=0)
    for g, gr in zip(doc["solvers"]["exact"]["pll"]["groups"], REF["pll"]["groups"]):
        np.testing.assert_allclose(g["p"], gr["p"], atol=1e-8, rtol=0)
    assert doc["delta"] == pytest.approx(0.25)


def test_the_command_flushes_its_output_and_exits_with_its_code(tmp_path):
    """The console entry point: what it printed to a pipe (block-buffered) arrives whole,
    results are written, and the exit codes are main()'s."""
    out = tmp_path / "out"
    r = _run("simulate", "--K", "3", "--n", "20", "--rounds", "3", "--solver", "linear",
             "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1].split()[0] == "3"                # the table's last row
    assert json.loads((out / "result.json").read_text())["config"]["rounds"] == 3
    bad = _run("simulate", "--lam", "1e5", "--out", str(tmp_path / "never"))
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "lam" in bad.stderr
    assert not (tmp_path / "never").exists()


@pytest.mark.slow
def test_the_command_runs_under_a_profiler(tmp_path):
    """The command ends like any Python program, so cProfile writes its profile, and the
    profile holds the command's own entry point. (Slow: a third process start; the fast set's
    case of the command ending as a Python program is the previous test's.)"""
    import pstats

    prof = tmp_path / "p.prof"
    r = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "sdtheory",
                        "simulate", "--K", "3", "--n", "20", "--rounds", "1", "--solver",
                        "linear", "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    names = {(Path(f).name, fn) for f, _, fn in pstats.Stats(str(prof)).stats}
    assert ("__init__.py", "main") in names


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--lam", "0"], "lam"),
        (["--lam", "-1"], "lam"),
        (["--eta", "1.5"], "eta"),
        (["--K", "1"], "K"),
        (["--c", "0.1", "--d", "0.4"], "c > d"),
        (["--counts", "COUNTS_BAD_SUM"], "row 0"),
        (["--counts", "COUNTS_NOT_JSON"], "not valid JSON"),
        (["--counts", "/nonexistent/counts.json"], "cannot read"),
    ],
)
def test_simulate_bad_input_exit_code_2(tmp_path, capsys, args, fragment):
    bad_sum = tmp_path / "bad.json"
    bad_sum.write_text(json.dumps([[60, 30, 20, 11]] + REF["counts"][1:]))
    not_json = tmp_path / "nj.json"
    not_json.write_text("[[1, 2],")
    files = {"COUNTS_BAD_SUM": str(bad_sum), "COUNTS_NOT_JSON": str(not_json)}
    args = [files.get(a, a) for a in args]
    rc = main(["simulate", "--K", "4", "--n", "120", "--rounds", "1", "--json", *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert fragment in err


def test_every_subcommand_has_help_with_defaults():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {"simulate", "phase", "verify", "probe", "optimize", "figures",
                                "explore"}
    for name, p in sub.choices.items():
        text = p.format_help()
        for action in p._actions:
            if action.dest == "help":
                continue
            assert action.help, f"{name} --{action.dest} has no help text"
        assert "default" in text


def _on_terminal(args, tmp_path):
    """stdout and stderr of ``python -m sdtheory ARGS`` run on a 120-column pseudo-terminal."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "sdtheory", *args], cwd=tmp_path,
                            stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:            # the follower closed: the command has ended
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    return proc.wait(), out.decode()


PHASE_BAR = ["phase", "--x", "eta:0:0.5:10", "--y", "lam:1e-4:1e-2:10:log", "--solver",
             "linear", "--max-rounds", "5"]


def _assert_one_bar(out):
    """What a terminal showed of PHASE_BAR: one tqdm bar counting its 100 cells (erased at the
    end), the job's summary line after it, and no line per cell."""
    frames = [f for f in out.replace("\r\n", "\n").replace("\r", "\n").split("\n")
              if "cells:" in f and "%|" in f]
    # (a job this short may end before tqdm redraws: its first frame counts 0 of 100 cells)
    assert frames and all("/100 [" in f and "cell/s" in f for f in frames), out
    lines = [ln.strip() for ln in out.replace("\r", "\n").split("\n") if ln.strip()]
    assert sum("100 cells in" in ln for ln in lines) == 1, out
    assert not any("cell " in ln and "/100" in ln and "%|" not in ln for ln in lines), out


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_stream(tmp_path, monkeypatch, capsys):
    """In this process, stderr a terminal: the phase diagram draws one tqdm bar; --quiet draws
    nothing (the next test runs the command on a pseudo-terminal)."""
    for quiet, out in (([], "a"), (["--quiet"], "b")):
        terminal = _Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        rc = main([*quiet, *PHASE_BAR, "--out", str(tmp_path / out)])
        monkeypatch.undo()
        assert rc == 0, terminal.getvalue()
        if quiet:
            assert "%|" not in terminal.getvalue() and "cells in" not in terminal.getvalue()
        else:
            _assert_one_bar(terminal.getvalue())
    capsys.readouterr()


@pytest.mark.slow
def test_progress_bar_on_a_terminal(tmp_path):
    """On a terminal a phase diagram draws one tqdm bar counting cells (erased at the end),
    with the job's summary line after it and no line per cell; --quiet draws nothing."""
    rc, out = _on_terminal(PHASE_BAR + ["--out", "a"], tmp_path)
    assert rc == 0, out
    _assert_one_bar(out)
    rc, out = _on_terminal(["--quiet"] + PHASE_BAR + ["--out", "b"], tmp_path)
    assert rc == 0 and "%|" not in out and "cells in" not in out, out
