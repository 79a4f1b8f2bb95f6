"""Every bad input answered: one line naming the parameter and what is wrong, exit code 2 from
the command line, no traceback and no file written (docs/guide.md "Every command").

The table below is the record of the bad inputs tried. Each command-line row runs
``sdtheory.cli.main`` in-process with ``--out`` pointing into a fresh directory, and asserts
the exit code, a single stderr line ``sdtheory COMMAND: error: ...`` containing the expected
fragment, and that nothing was written. Each Python row asserts the exception type and a
one-line message containing the fragment.
"""

import json
import re

import numpy as np
import pytest

import sdtheory as sd
from sdtheory.cli import main
from sdtheory.distill import pll_targets, run_rounds, self_distill
from sdtheory.jobs.simulate import SimConfig
from sdtheory.jobs.sweep import phase_diagram
from sdtheory.kernel_ridge import rbf_kernel
from sdtheory.noise import corruption_from_counts, transition_matrix
from sdtheory.problem import ProblemConfig
from sdtheory.solvers import ExactSolver, LinearSolver

C4 = [[60, 30, 20, 10], [10, 60, 30, 20], [20, 10, 60, 30], [30, 20, 10, 60]]

# (command line, expected fragment of the error line). Words in capitals are replaced by files
# made in the test's directory; OUT is the output directory that must stay absent.
CLI_ROWS = [
    ("simulate --K -3", "K (number of classes) must be an integer in [2, 100000], got -3"),
    ("simulate --K 1", "K (number of classes) must be an integer in [2, 100000], got 1"),
    ("simulate --K 2147483648", "K (number of classes) must be an integer in [2, 100000], got "
     "2147483648"),
    ("simulate --K 2000 --n 1 --rounds 0 --solver exact", "the group-reduced problem of "
     "K = 2000 classes (--K; the exact solver holds K^3 numbers, --solver linear K^2) needs "
     "about"),
    ("simulate --method relation --n 100000", "the dense N x N Gram matrix of N = 400000 "
     "samples that the relation method needs (--n) needs about"),
    ("simulate --n 10000 --rounds 1 --solver trained", "the N x N features of N = 40000 "
     "samples that the trained solver needs (--n, --K) needs about"),
    ("simulate --K 4 --n 8000 --jitter 0.001", "the dense N x N Gram matrix of N = 32000 "
     "samples (--n, --K) needs about"),
    ("optimize --K 30000", "the closed-form margins of K = 30000 classes (--K; K^3 numbers) "
     "needs about"),
    ("optimize --K 1000", "the closed-form margins of K = 1000 classes (--K; K^3 numbers) "
     "needs about"),
    ("phase --x K:99:100:2 --y eta:0:0.7:3 --executor local --workers 2", "a phase diagram "
     "with K up to 100 (--x, --y) on 2 workers (--workers) needs about"),
    ("phase --x eta:0:0.5:3 --executor local --workers 1024", "on 1024 workers (--workers) "
     "needs about"),
    ("verify --quick --executor local --workers 1024", "verify on 1024 workers (--workers) "
     "needs about"),
    ("probe --executor local --workers 1024", "on 1024 workers (--workers) needs about"),
    ("simulate --K abc", "argument --K: invalid int value: 'abc'"),
    ("simulate --n 0", "n (samples per class) must be an integer >= 1, got 0"),
    ("simulate --seed -1", "seed must be an integer >= 0, got -1"),
    ("simulate --lam 0", "lam must be a number in [1e-08, 1000]"),
    ("simulate --lam -1", "lam must be a number in [1e-08, 1000]"),
    ("simulate --lam 1e-300 --solver linear", "lam must be a number in [1e-08, 1000]"),
    ("simulate --lam 1e4", "lam must be a number in [1e-08, 1000]"),
    ("simulate --lam nan", "lam must be a number in [1e-08, 1000]"),
    ("simulate --eta 1", "eta must be a number in [0, 1), got 1.0"),
    ("simulate --eta -0.1", "eta must be a number in [0, 1), got -0.1"),
    ("simulate --c 0.1 --d 0.4", "c > d"),
    ("simulate --c 1.5", "c"),
    ("simulate --jitter -1", "jitter must be >= 0"),
    ("simulate --noise foo", "argument --noise: invalid choice: 'foo'"),
    ("simulate --model superclass --classes-per-superclass 0",
     "classes-per-superclass m must be an integer >= 1, got 0"),
    ("simulate --model superclass --K 5", "K = 5 must be a multiple of classes-per-superclass"),
    ("simulate --model gmm --dim 0", "dim (feature dimension D) must be an integer >= 1, got 0"),
    ("simulate --counts RAGGED", "row 1 has 1 entries, there are 2 rows"),
    ("simulate --K 3 --counts COUNTS4", "the counts matrix is 4 x 4, but K = 3"),
    ("simulate --K 4 --n 120 --counts BADSUM", "counts row 0 sums to 121"),
    ("simulate --K 4 --n 120 --counts NEGATIVE", "counts must be non-negative"),
    ("simulate --counts NOTJSON", "is not valid JSON"),
    ("simulate --counts BINARY", "is not a text file (JSON, UTF-8 expected)"),
    ("simulate --counts DEEP", "nests lists too deeply"),
    ("simulate --model gmm --dim 100000000", "the N x D features of N = 2000 samples in "
     "D = 100000000 dimensions"),
    ("probe --features HUGELABEL", "y_train has label 1000000000000, but its 6 samples cannot"),
    ("probe --features HUGEFEATURE", "hugefeature.npz': X_train must have entries of magnitude "
     "<= 1e+50 (their Gram matrix would overflow float64), got 1e+200 at row 5, column 1"),
    ("simulate --counts /nonexistent/c.json", "cannot read /nonexistent/c.json"),
    ("simulate --rounds 1000000", "rounds must be an integer in [0, 100000], got 1000000"),
    ("simulate --rounds -1", "rounds must be an integer in [0, 100000], got -1"),
    ("simulate --out AFILE", "exists and is not a directory"),
    ("simulate --out AFILE/sub", "cannot be created"),
    ("simulate --out /proc/sdtheory-test", "cannot be created"),
    ("simulate --n 1000000000 --sampled", "sampling the labels of N = 4000000000 samples"),
    ("simulate --n 200000 --jitter 0.001", "the dense N x N Gram matrix of N = 800000"),
    # the authors' N = 2000, eps = 0.05 (slow: the 2000 x 2000 eigenvalues), and N = 200
    ("simulate --n 50 --jitter 0.2 --solver exact", "G is not positive semi-definite"),
    ("simulate --n 50 --jitter 0.2 --solver linear", "G is not positive semi-definite"),
    pytest.param("simulate --n 500 --jitter 0.05 --solver exact",
                 "G is not positive semi-definite", marks=pytest.mark.slow),
    pytest.param("simulate --n 500 --jitter 0.05 --solver linear",
                 "G is not positive semi-definite", marks=pytest.mark.slow),
    ("phase --x eta:0:0.7", "expected NAME:LO:HI:COUNT"),
    ("phase --x foo:0:1:3", "unknown parameter 'foo'"),
    ("phase --x eta:0:1.2:3", "eta must be a number in [0, 1)"),
    ("phase --y lam:0:1:3", "lam must be a number in [1e-08, 1000]"),
    ("phase --x eta:0:0.5:0", "COUNT"),
    ("phase --max-rounds 1000000", "max-rounds must be an integer in [0, 10000], got 1000000"),
    ("phase --x K:2:400:3", "a phase diagram with K up to 400"),
    ("phase --out AFILE", "exists and is not a directory"),
    ("phase --jitter 0.01", "jitter"),
    ("verify --only nosuch", "nosuch"),
    ("verify --out AFILE", "exists and is not a directory"),
    ("figures --only nosuch", "nosuch"),
    ("figures --out AFILE", "exists and is not a directory"),
    ("simulate --loss mse --solver exact", "runs with --solver linear only"),
    ("simulate --loss hinge", "argument --loss: invalid choice: 'hinge'"),
    ("simulate --label-weight 1.5", "--label-weight must be in [0, 1] for the softmax loss"),
    ("simulate --label-weight -0.5", "must be in [0, 1] for the softmax loss"),
    ("simulate --loss mse --label-weight nan", "label weight alpha must be a finite number"),
    ("simulate --loss mse --label-weight 1e300 --rounds 3",
     "label weight alpha = 1e+300 overflows float64 in the targets"),
    ("simulate --method foo", "argument --method: invalid choice: 'foo'"),
    ("simulate --method relation --relation-snr 0", "relation snr must be > 0, got 0"),
    ("simulate --method relation --relation-tau -1", "relation tau must be > 0"),
    ("simulate --method relation --relation-k 0", "relation k must be an integer in"),
    ("simulate --method relation --relation-dim 0", "relation dim must be an integer in"),
    ("simulate --method relation --relation-view features", "needs per-sample features"),
    ("simulate --method relation --relation-view block --relation-purity 1.5",
     "relation purity must be a number in [0, 1], got 1.5"),
    ("optimize --model gmm", "--model gmm has no closed-form margins"),
    ("optimize --sampled", "the closed-form margins use exact counts"),
    ("optimize --jitter 0.01", "the closed-form margins need an exact block model"),
    ("optimize --max-rounds -1", "max-rounds must be an integer in [0, 1000], got -1"),
    ("optimize --label-weight 1.5", "--label-weight must be in [0, 1]"),
    ("optimize --label-weight -0.5", "--label-weight must be in [0, 1]"),
    ("optimize --eta 1.2", "eta must be a number in [0, 1)"),
    ("optimize --out AFILE", "exists and is not a directory"),
    ("probe --lam 0", "lam must be a number in [1e-08, 1000]"),
    ("probe --rates 1.5", "eta must be a number in [0, 1), got 1.5"),
    ("probe --rates ,", "--rates must be a comma-separated list"),
    ("probe --rates 0.1,abc", "--rates: 'abc' is not a number"),
    ("probe --seeds -1", "seed must be an integer >= 0, got -1"),
    ("probe --seeds 0,0", "--seeds lists a value twice"),
    ("probe --rounds -1", "rounds must be an integer in [0, 100], got -1"),
    ("probe --noise foo", "--noise must be one of sym, asym, pairflip, superclass"),
    ("probe --feature-map foo", "argument --feature-map: invalid choice: 'foo'"),
    ("probe --dataset nosuch", "--dataset must be one of digits, digits-efficientnet-lite0"),
    ("probe --features /nonexistent/f.npz", "does not exist or is not a file"),
    ("probe --features NOTJSON", "is not an .npz file"),
    ("probe --features /nonexistent/f.npz --dataset digits", "give exactly one of"),
    ("probe --engine foo", "argument --engine: invalid choice: 'foo'"),
    ("probe --select-best-epoch-on-test", "applies to --engine trained only"),
    ("probe --engine trained --epochs 0", "epochs must be an integer in [1, 100000], got 0"),
    ("probe --superclass-cut 0", "superclass-cut must be > 0"),
    ("probe --out AFILE", "exists and is not a directory"),
    ("probe --method foo", "argument --method: invalid choice: 'foo'"),
    ("probe --label-weight 1.5", "--label-weight must be in [0, 1]"),
    ("probe --label-weight -0.5", "--label-weight must be in [0, 1]"),
    ("probe --relation-features /nonexistent/v.npz", "applies to --method relation only"),
    ("probe --method relation --relation-tau 0", "relation tau must be > 0"),
    ("probe --method relation --relation-k 0", "relation k must be an integer"),
    # options given where they do not apply are refused, not ignored
    ("simulate --e 0.05", "--e applies to --model superclass only"),
    ("simulate --classes-per-superclass 3", "--classes-per-superclass applies to --model "
     "superclass only"),
    ("simulate --dim 50", "--dim applies to --model gmm only"),
    ("simulate --pll-ties lower", "--pll-ties applies to --pll only"),
    ("simulate --relation-k 5", "--relation-k applies to --method relation"),
    ("simulate --method relation --relation-view block --relation-snr 2",
     "--relation-snr applies to --relation-view gmm only"),
    ("simulate --K 4 --n 120 --counts COUNTS --sampled", "--sampled does not apply to --counts"),
    ("phase --pll-ties lower", "--pll-ties applies to --quantity pll_gain only"),
    ("probe --epochs 5", "--epochs applies to --engine trained only"),
    ("probe --relation-k 5", "--relation-k applies to --method relation only"),
    ("probe --dataset ''", "--dataset must name a bundled dataset, got ''"),
]


def _files(tmp_path):
    made = {
        "RAGGED": [[1, 2], [3]],
        "COUNTS4": np.diag([5, 5, 5, 5]).tolist(),
        "COUNTS": [[60, 30, 20, 10], [10, 60, 30, 20], [20, 10, 60, 30], [30, 20, 10, 60]],
        "BADSUM": [[61, 30, 20, 10]] + C4[1:],
        "NEGATIVE": [[130, -10, 0, 0]] + C4[1:],
    }
    paths = {}
    for name, value in made.items():
        p = tmp_path / f"{name.lower()}.json"
        p.write_text(json.dumps(value))
        paths[name] = str(p)
    (tmp_path / "notjson.json").write_text("[[1, 2],")
    paths["NOTJSON"] = str(tmp_path / "notjson.json")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe[[1, 2], [3, 4]]\x00")
    paths["BINARY"] = str(tmp_path / "binary.json")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    paths["DEEP"] = str(tmp_path / "deep.json")
    y = np.array([0, 1, 0, 1, 0, 10 ** 12])
    np.savez(tmp_path / "hugelabel.npz", X_train=np.eye(6), y_train=y, X_test=np.eye(6)[:2],
             y_test=y[:2])
    paths["HUGELABEL"] = str(tmp_path / "hugelabel.npz")
    X = np.eye(6)
    X[5, 1] = 1e200
    np.savez(tmp_path / "hugefeature.npz", X_train=X, y_train=y % 2, X_test=np.eye(6)[:2],
             y_test=y[:2])
    paths["HUGEFEATURE"] = str(tmp_path / "hugefeature.npz")
    (tmp_path / "afile").write_text("not a directory")
    paths["AFILE"] = str(tmp_path / "afile")
    return paths


@pytest.mark.parametrize("line, fragment", CLI_ROWS,
                         ids=[(r.values if hasattr(r, "values") else r)[0] for r in CLI_ROWS])
def test_cli_bad_input(tmp_path, capsys, monkeypatch, line, fragment):
    # the memory refusals are judged against the 24 GiB of the CI machine, whatever this
    # machine has
    monkeypatch.setattr("sdtheory._memory.available_memory", lambda: 24 * 2 ** 30)
    files = _files(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    args = []
    for a in line.split():
        for key, path in files.items():
            a = a.replace(key, path) if key in a else a
        args.append("" if a == "''" else a)
    if "--out" not in args:
        args += ["--out", str(tmp_path / "OUT")]
    try:
        rc = main(["--quiet", *args])
    except SystemExit as stop:         # argparse's own errors
        rc = stop.code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"sdtheory {args[0]}: error: ") or lines[0].startswith(
        "sdtheory: error: "), lines[0]
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before      # nothing written


@pytest.fixture(scope="module")
def small():
    with sd.x64():
        m = sd.two_level(4, 120, 0.4, 0.1)
        s = ExactSolver(gram=m, labels=C4, lam=1e-3)
    return m, s


def _indefinite():
    G = sd.two_level(3, 4, 0.4, 0.1).dense()
    G[0, 1] = G[1, 0] = 3.0
    return G, corruption_from_counts([[2, 1, 1], [1, 2, 1], [1, 1, 2]])


# (callable taking (model, exact solver), exception type, expected fragment)
API_ROWS = [
    ("self_distill rounds str", lambda m, s: self_distill(s, "3"), ValueError,
     "rounds must be an integer in [0, 100000], got '3'"),
    ("self_distill rounds float", lambda m, s: self_distill(s, 2.7), ValueError,
     "rounds must be an integer in [0, 100000], got 2.7"),
    ("self_distill rounds bool", lambda m, s: self_distill(s, True), ValueError,
     "rounds must be an integer"),
    ("run_rounds rounds negative", lambda m, s: run_rounds(s, -1), ValueError,
     "rounds must be an integer in [0, 100000], got -1"),
    ("SimConfig lam str", lambda m, s: SimConfig(lam="1e-3"), ValueError,
     "lam must be a number in [1e-08, 1000] (the validated range), got '1e-3'"),
    ("SimConfig K=1", lambda m, s: SimConfig(K=1), ValueError,
     "K (number of classes) must be an integer in [2, 100000], got 1"),
    ("SimConfig K float", lambda m, s: SimConfig(K=4.5), ValueError,
     "K (number of classes) must be an integer in [2, 100000], got 4.5"),
    ("SimConfig solver", lambda m, s: SimConfig(solvers=("foo",)), ValueError,
     "solver must be one of"),
    ("SimConfig pll_ties", lambda m, s: SimConfig(pll_ties="random"), ValueError,
     "pll_ties must be one of split, lower, got 'random'"),
    ("SimConfig rounds", lambda m, s: SimConfig(rounds=2.7), ValueError,
     "rounds must be an integer in [0, 100000], got 2.7"),
    ("ProblemConfig eta", lambda m, s: ProblemConfig(eta=1.0), ValueError,
     "eta must be a number in [0, 1), got 1.0"),
    ("ProblemConfig n float", lambda m, s: ProblemConfig(n=2.5), ValueError,
     "n (samples per class) must be an integer >= 1, got 2.5"),
    ("ProblemConfig seed", lambda m, s: ProblemConfig(seed=-1), ValueError,
     "seed must be an integer >= 0, got -1"),
    ("ProblemConfig counts K", lambda m, s: ProblemConfig(K=3, counts=C4), ValueError,
     "the counts matrix is 4 x 4, but K = 3"),
    ("ProblemConfig ragged", lambda m, s: ProblemConfig(counts=[[1, 2], [3]]), ValueError,
     "counts must be a K x K matrix"),
    ("ExactSolver lam 0", lambda m, s: ExactSolver(gram=m, labels=C4, lam=0), ValueError,
     "lam must be a number in [1e-08, 1000]"),
    ("ExactSolver lam tiny", lambda m, s: ExactSolver(gram=m, labels=C4, lam=1e-9), ValueError,
     "lam must be a number in [1e-08, 1000] (the validated range), got 1e-09"),
    ("ExactSolver counts rows", lambda m, s: ExactSolver(gram=m, labels=np.array(C4) + 1,
                                                         lam=1e-3), ValueError,
     "counts row 0 sums to 124, but class 0 has n_0 = 120 samples"),
    ("ExactSolver indefinite", lambda m, s: ExactSolver(gram=_indefinite()[0],
                                                        labels=_indefinite()[1], lam=1e-3),
     ValueError, "G is not positive semi-definite: smallest eigenvalue"),
    ("LinearSolver indefinite", lambda m, s: LinearSolver(gram=_indefinite()[0],
                                                          labels=_indefinite()[1], lam=1e-3),
     ValueError, "G is not positive semi-definite: smallest eigenvalue"),
    ("LinearSolver lam big", lambda m, s: LinearSolver(gram=m, labels=C4, lam=1e5), ValueError,
     "lam must be a number in [1e-08, 1000]"),
    ("corruption ragged", lambda m, s: corruption_from_counts([[1, 2], [3]]), ValueError,
     "counts must be a K x K matrix"),
    ("transition eta", lambda m, s: transition_matrix("sym", 4, 1.2), ValueError,
     "eta must be a number in [0, 1), got 1.2"),
    ("transition kind", lambda m, s: transition_matrix("foo", 4, 0.2), ValueError, "foo"),
    ("two_level c < d", lambda m, s: sd.two_level(4, 10, 0.1, 0.4), ValueError, "c > d"),
    ("pll ties", lambda m, s: pll_targets(np.full((2, 3), 1 / 3), ties="random"), ValueError,
     "ties must be one of split, lower, got 'random'"),
    ("pll NaN", lambda m, s: pll_targets(np.array([[np.nan, 0.5, 0.5]])), ValueError,
     "P (teacher outputs) must be finite"),
    ("rbf gamma negative", lambda m, s: rbf_kernel(np.eye(2), np.eye(2), -1.0), ValueError,
     "gamma must be a number > 0, got -1"),
    ("rbf gamma NaN", lambda m, s: rbf_kernel(np.eye(2), np.eye(2), float("nan")), ValueError,
     "gamma must be a finite number"),
    ("phase axis", lambda m, s: phase_diagram(ProblemConfig(), "eta:0:1.5:3", "lam:1e-4:1e-3:2",
                                              solver="linear"), ValueError,
     "eta must be a number in [0, 1)"),
    ("round_outputs negative", lambda m, s: LinearSolver(gram=m, labels=C4, lam=1e-3)
     .round_outputs([-3]), ValueError,
     "r (round) must be an integer in [0, 100000] (or an array of them), got -3"),
    ("round_outputs fractional", lambda m, s: LinearSolver(gram=m, labels=C4, lam=1e-3)
     .round_outputs([1.5]), ValueError, "r (round) must be an integer in [0, 100000]"),
    ("round_outputs NaN", lambda m, s: LinearSolver(gram=m, labels=C4, lam=1e-3)
     .round_outputs(np.nan), ValueError, "r (round) must be an integer in [0, 100000]"),
    ("phase max_rounds", lambda m, s: phase_diagram(ProblemConfig(), "eta:0:0.5:3",
                                                    "lam:1e-4:1e-3:2", max_rounds=2.5),
     ValueError, "max-rounds must be an integer"),
]


@pytest.mark.parametrize("name, make, exc, fragment", API_ROWS, ids=[r[0] for r in API_ROWS])
def test_python_bad_input(small, name, make, exc, fragment):
    m, s = small
    with sd.x64(), pytest.raises(exc) as info:
        make(m, s)
    msg = str(info.value)
    assert "\n" not in msg and fragment in msg, msg


def test_solver_built_in_x64_context_and_used_outside_says_float64(small):
    """A solver built inside ``with sdtheory.x64():`` and run outside it asks for float64
    instead of failing in float32."""
    import jax

    m, s = small
    with jax.enable_x64(False), pytest.raises(RuntimeError,
                                              match=re.escape("ExactSolver.fit needs float64")):
        s.fit(s.targets0())


# (experiment config of figure optimize_eta, or None for a missing file; expected fragment;
# optionally another figure). Each is refused before any computation with the config file's
# name, exit 2, and no --out.
TOML_ROWS = [
    ("", "optimize_eta.toml: missing key"),
    ("K = 4\nn = 100\nc = 0.4\nd = 0.1\nnoise = 'sym'\netas = [0.2]\n",
     "optimize_eta.toml: missing key 'rounds'"),
    ("K = 4\n[quick]\n", None),
    ("quick = 5\n", "optimize_eta.toml: quick must be a table"),
    (None, "no config for figure 'optimize_eta'"),
    ("K = 4\netas = [\n", "optimize_eta.toml: not a valid TOML file"),
    (b"\xff\xfe\x00K = 4", "optimize_eta.toml: not a valid TOML file (not UTF-8 text)"),
    ("K = 4\nn = 100\nc = 0.4\nd = 0.1\nnoise = 'sym'\netas = []\nrounds = [0]\n",
     "optimize_eta.toml: etas is an empty list"),
    ("K = 1\nn = 100\nc = 0.4\nd = 0.1\nnoise = 'sym'\netas = [0.2]\nrounds = [0]\n",
     "optimize_eta.toml: K (number of classes) must be an integer in [2, 100000], got 1"),
    ("K = 4\nn = 100\nc = 0.4\nd = 0.1\nnoise = 'sym'\nrounds = 2\nlams = [1e-3]\n"
     "pll_ties = ['lower']\n[eta]\nlo = 0.0\nhi = 0.5\ncount = 0\n",
     "pll_vs_sd.toml: eta count must be an integer >= 1, got 0", "pll_vs_sd"),
]


@pytest.mark.parametrize("row", [r for r in TOML_ROWS if r[1]],
                         ids=[f"toml{i}" for i, r in enumerate(TOML_ROWS) if r[1]])
def test_figures_bad_config(tmp_path, monkeypatch, capsys, row):
    from sdtheory.jobs import figures

    text, fragment, name = (*row, "optimize_eta")[:3]
    exp = tmp_path / "experiments"
    exp.mkdir()
    if text is not None:
        path = exp / f"{name}.toml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    monkeypatch.setattr(figures, "EXPERIMENTS", exp)
    out = tmp_path / "OUT"
    rc = main(["--quiet", "figures", "--only", name, "--out", str(out)])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("sdtheory figures: error: ") and fragment in err[0], err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiments"]


def test_options_not_given_do_not_refuse_a_valid_problem(tmp_path, capsys):
    """simulate --K 2 --n 5 runs (it was refused by the default of --relation-k, an option of
    --method relation that was not given): N = 10 samples, every one corrected by the teacher
    at eta = 0, so round 0 has accuracy 1."""
    out = tmp_path / "o"
    rc = main(["--quiet", "simulate", "--K", "2", "--n", "5", "--eta", "0", "--rounds", "1",
               "--solver", "linear", "--out", str(out)])
    capsys.readouterr()
    doc = json.loads((out / "result.json").read_text())
    assert rc == 0 and doc["solvers"]["linear"]["rounds"][0]["train_acc"] == 1.0
    assert doc["config"]["K"] * doc["config"]["n"] == 10


def test_probe_records_the_relation_k_it_used(feature_file, tmp_path, capsys):
    """--relation-k above N - 1 is clipped to N - 1 = 89 neighbours (every other training
    sample), and the results record 89 (they recorded the k asked for)."""
    out = tmp_path / "o"
    rc = main(["--quiet", "probe", "--features", str(feature_file), "--noise", "sym",
               "--rates", "0.2", "--seeds", "0", "--rounds", "1", "--method", "relation",
               "--relation-k", "100000", "--out", str(out)])
    capsys.readouterr()
    doc = json.loads((out / "probe.json").read_text())
    assert rc == 0 and doc["stats"]["relation_k_used"] == 89
