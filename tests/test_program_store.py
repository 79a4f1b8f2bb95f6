"""The store of compiled Newton programs (sdtheory.solvers._store).

A stored program must give the same bits as the program traced in process (dense rounds and a
batched phase diagram are compared exactly), a fresh process must load it instead of tracing
(a program that calls LAPACK too, which needs JAX's LAPACK kernels initialised first), and a
damaged file, an unwritable folder or a program that cannot be stored must only cost time: the
same results, from plain ``jax.jit``."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import sdtheory as sd
from sdtheory.simulate import ProblemConfig
from sdtheory.solvers import _store
from sdtheory.sweep import phase_diagram

GRID = dict(x="eta:0:0.7:5", y="lam:1e-4:1e-2:3:log", max_rounds=12)


@pytest.fixture
def store(tmp_path):
    """The store in a fresh folder for one test; off again afterwards."""
    before = _store.directory()
    _store.use_directory(tmp_path / "programs")
    yield tmp_path / "programs"
    _store.use_directory(before)


def _dense_rounds():
    m = sd.two_level(3, 30, 0.4, 0.1)
    G = sd.jitter(m.dense(), 0.01, seed=1)
    cor = sd.corrupt_sampled(sd.transition_matrix("sym", 3, 0.4), m.labels(), seed=2)
    res = sd.run_rounds(sd.ExactSolver(gram=G, labels=cor, lam=1e-3), 3, keep_outputs=True)
    return np.array(res.outputs), np.array(res.residual)


def _phase():
    res = phase_diagram(ProblemConfig(n=60), **GRID)
    return {k: np.asarray(v) for k, v in res.values.items()}


def _counts():
    return dict(_store.STATS)


def test_stored_programs_give_the_same_bits_as_traced_ones(store):
    _store.use_directory(None)
    dense_traced, phase_traced = _dense_rounds(), _phase()
    _store.use_directory(store)
    before = _counts()
    dense_stored, phase_stored = _dense_rounds(), _phase()
    files = sorted(p.name for p in store.iterdir())
    # one unbatched dense program and at least one batched group program were stored
    assert _counts()["stored"] - before["stored"] == len(files) >= 2
    assert any(f.startswith("newton-batched-") for f in files)
    assert any(f.startswith("newton-") and not f.startswith("newton-batched-") for f in files)
    assert _counts()["failed"] == before["failed"]
    np.testing.assert_array_equal(dense_stored[0], dense_traced[0])
    np.testing.assert_array_equal(dense_stored[1], dense_traced[1])
    assert set(phase_stored) == set(phase_traced)
    for k in phase_traced:
        np.testing.assert_array_equal(phase_stored[k], phase_traced[k], err_msg=k)


CHILD = """
import json, sys
import numpy as np
import sdtheory as sd
sd.enable_x64()
from sdtheory.solvers import _store
_store.use_directory(sys.argv[1] or None)
m = sd.two_level(3, 30, 0.4, 0.1)
G = sd.jitter(m.dense(), 0.01, seed=1)
cor = sd.corrupt_sampled(sd.transition_matrix("sym", 3, 0.4), m.labels(), seed=2)
res = sd.run_rounds(sd.ExactSolver(gram=G, labels=cor, lam=1e-3), 3, keep_outputs=True)
dense_scipy = "scipy.linalg" in sys.modules
C = sd.exact_counts(sd.transition_matrix("sym", 4, 0.5), [40] * 4)
group = sd.run_rounds(sd.ExactSolver(gram=sd.two_level(4, 40, 0.4, 0.1), labels=C, lam=1e-4),
                      3, keep_outputs=True)
print(json.dumps({"stats": _store.STATS, "dense_scipy": dense_scipy,
                  "outputs": np.array(res.outputs).ravel().tolist(),
                  "group": np.array(group.outputs).ravel().tolist()}))
"""


def _child(store, script=CHILD):
    """Run ``script`` in a fresh process with ``store`` as its argument; its last line (JSON)."""
    out = subprocess.run([sys.executable, "-c", script, str(store or "")], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_fresh_process_loads_the_stored_programs_instead_of_tracing(tmp_path):
    # fresh processes only: the last bits of numpy's eigendecomposition (the preconditioner's
    # data) depend on the BLAS thread state of the process, which a test session changes.
    # The group program calls LAPACK: loaded without JAX's LAPACK kernels initialised, it
    # crashed the process (segmentation fault, exit code -11).
    store = tmp_path / "programs"
    first, second, traced = _child(store), _child(store), _child(None)
    assert first["stats"] == {"loaded": 0, "stored": 2, "failed": 0}
    assert second["stats"] == {"loaded": 2, "stored": 0, "failed": 0}
    assert len(list(store.iterdir())) == 2
    for run in (first, second):
        np.testing.assert_array_equal(run["outputs"], traced["outputs"])
        np.testing.assert_array_equal(run["group"], traced["group"])
    # the dense program calls no LAPACK routine, and a dense solve that loads it never
    # imports scipy.linalg (0.25 to 0.4 s of a cold run, benchmarks/README.md)
    assert not second["dense_scipy"]


CACHED_CHILD = """
import json, os, sys
os.environ["SDTHEORY_JAX_CACHE"] = sys.argv[1]
import numpy as np
import sdtheory as sd
from sdtheory._x64 import configure_process
configure_process()
from sdtheory.solvers import _store
C = sd.exact_counts(sd.transition_matrix("sym", 4, 0.5), [40] * 4)
group = sd.run_rounds(sd.ExactSolver(gram=sd.two_level(4, 40, 0.4, 0.1), labels=C, lam=1e-4),
                      3, keep_outputs=True)
print(json.dumps({"stats": _store.STATS, "group": np.array(group.outputs).ravel().tolist()}))
"""


def test_a_program_stored_again_beside_a_filled_compilation_cache_runs(tmp_path):
    """The store beside JAX's persistent compilation cache (as the sdtheory command keeps
    them): with the programs folder emptied but the compilation cache kept, the program is
    compiled and stored again, and a fresh process loads and runs it. (When that compilation
    was served by JAX's cache, the executable, serialised again, loaded but failed to run:
    "Function broadcast_multiply_fusion.2 not found".)"""
    first = _child(tmp_path, CACHED_CHILD)
    shutil.rmtree(tmp_path / "programs")
    again, loaded = _child(tmp_path, CACHED_CHILD), _child(tmp_path, CACHED_CHILD)
    assert first["stats"] == again["stats"] == {"loaded": 0, "stored": 1, "failed": 0}
    assert loaded["stats"] == {"loaded": 1, "stored": 0, "failed": 0}
    np.testing.assert_array_equal(loaded["group"], first["group"])


def test_a_stored_program_that_fails_to_run_is_replaced(store, monkeypatch):
    import jax
    from jax.experimental import serialize_executable

    first = _dense_rounds()[0]
    (path,) = store.iterdir()
    _store.use_directory(store)                  # forget the program loaded in this process

    def broken(*args, **kwargs):
        def run(*a):
            raise jax.errors.JaxRuntimeError("NOT_FOUND: Function f not found")
        return run

    monkeypatch.setattr(serialize_executable, "deserialize_and_load", broken)
    before = _counts()
    again = _dense_rounds()[0]
    assert _counts()["failed"] == before["failed"] + 1
    assert _counts()["loaded"] == before["loaded"] + 1
    assert not path.exists()
    np.testing.assert_array_equal(again, first)


def test_custom_calls_decide_what_is_stored():
    assert _store._check_custom_calls(set()) is False
    assert _store._check_custom_calls({"lapack_dgetrf_ffi", "__cublas$gemm"}) is True
    with pytest.raises(ValueError, match="may need initialising"):
        _store._check_custom_calls({"lapack_dgetrf_ffi", "some_kernel"})


def test_a_damaged_file_is_stored_again(store):
    first = _dense_rounds()[0]
    (path,) = store.iterdir()
    path.write_bytes(b"not a program")
    _store.use_directory(store)                  # forget the program loaded in this process
    before = _counts()
    again = _dense_rounds()[0]
    assert _counts()["stored"] == before["stored"] + 1
    assert _counts()["failed"] == before["failed"]
    assert path.read_bytes() != b"not a program"
    np.testing.assert_array_equal(again, first)


def test_an_unwritable_store_falls_back_to_jit(store, tmp_path):
    _store.use_directory(None)
    traced = _dense_rounds()[0]
    blocker = tmp_path / "a file"
    blocker.write_text("")
    _store.use_directory(blocker / "programs")    # cannot be created: a file is in the way
    before = _counts()
    out = _dense_rounds()[0]
    assert _counts()["failed"] == before["failed"] + 1
    np.testing.assert_array_equal(out, traced)


def test_the_key_follows_the_traced_source_and_the_shapes(store, tmp_path):
    import jax
    import jax.numpy as jnp

    src = tmp_path / "source.py"
    src.write_text("a = 1\n")
    fn = jax.jit(lambda x: 2.0 * x)
    x = jnp.ones(3)

    def key(args):
        leaves, treedef = jax.tree_util.tree_flatten(args)
        return _store._key("f", [src], treedef, [_store._signature(v) for v in leaves])

    k0 = key((x,))
    assert key((x,)) == k0
    assert key((jnp.ones(4),)) != k0                       # shape
    assert key((jnp.ones(3, dtype=jnp.int32),)) != k0      # dtype
    assert key(((x, x),)) != k0                            # tree structure
    src.write_text("a = 2\n")
    assert key((x,)) != k0                                 # the traced source changed
    out = _store.call_stored("f", fn, (x,), sources=[src])
    np.testing.assert_array_equal(np.asarray(out), 2.0 * np.ones(3))
    assert [p.name for p in store.iterdir()] == [f"f-{key((x,))}.jaxexe"]


def test_feature_problems_counting_cg_are_not_stored(store):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 5))
    cor = sd.corrupt_sampled(sd.transition_matrix("sym", 2, 0.2), np.repeat([0, 1], 20), seed=0)
    before = _counts()
    fit = sd.ExactSolver(gram=sd.Features(X), labels=cor, lam=1e-2).fit(one_hot(cor.given, 2))
    assert fit.residual <= 1e-12
    assert _counts() == before and not store.exists()


def one_hot(labels, K):
    return np.eye(K)[labels]
