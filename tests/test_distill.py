"""Rounds of SD and the PLL student, against the public reference vectors."""

import numpy as np
import pytest

from sdtheory.distill import pll_targets, run_rounds, self_distill
from sdtheory.metrics import accuracy, margins, tie_tolerance
from sdtheory.models import two_level
from sdtheory.noise import corrupt_exact, exact_counts, transition_matrix
from sdtheory.solvers import ExactSolver, LinearSolver
from tests.reference import public_vectors

VECTORS = public_vectors()
REF = VECTORS["block_k4_n120"]


def _assert_groups(groups, ref_groups, tol=1e-8):
    assert [(g["true"], g["given"], g["count"]) for g in groups] == [
        (g["true"], g["given"], g["count"]) for g in ref_groups]
    for g, r in zip(groups, ref_groups):
        np.testing.assert_allclose(g["p"], r["p"], atol=tol, rtol=0)


@pytest.mark.parametrize("which", ["exact", "linear"])
def test_block_k4_n120_every_round_and_pll(which):
    model = two_level(REF["K"], REF["n"], REF["c"], REF["d"])
    solver = (ExactSolver(gram=model, labels=REF["counts"], lam=REF["lam"]) if which == "exact"
              else LinearSolver(gram=model, labels=REF["counts"], lam=REF["lam"]))
    res = self_distill(solver, rounds=4, pll=True)
    gkey, akey = (("groups", "train_acc") if which == "exact"
                  else ("linear_groups", "linear_train_acc"))
    for rr, ref in zip(res.rounds, REF["rounds"]):
        assert rr.round == ref["round"]
        _assert_groups(res.groups(rr), ref[gkey])
        assert rr.train_acc == pytest.approx(ref[akey], abs=1e-12)
    assert res.r_star == 1
    if which == "exact":
        _assert_groups(res.groups(res.pll), REF["pll"]["groups"])
        assert res.pll.train_acc == REF["pll"]["train_acc"]


@pytest.mark.parametrize("row", VECTORS["authors_default_sym"]["rows"],
                         ids=lambda r: f"eta={r['eta']}")
def test_authors_default_r_star_exact_and_linear(row):
    cfg = VECTORS["authors_default_sym"]
    model = two_level(cfg["K"], cfg["n"], cfg["c"], cfg["d"])
    cor = corrupt_exact(transition_matrix("sym", cfg["K"], row["eta"]), model.sizes)
    assert cor.counts[0].tolist() == row["counts_row0"]
    R = cfg["max_rounds"]
    ex = self_distill(ExactSolver(gram=model, labels=cor.counts, lam=cfg["lam"]), rounds=R)
    li = self_distill(LinearSolver(gram=model, labels=cor.counts, lam=cfg["lam"]), rounds=R)
    assert ex.r_star == row["r_star_exact"]
    assert li.r_star == row["r_star_linear"]
    np.testing.assert_allclose([rr.train_acc for rr in ex.rounds],
                               row["train_acc_by_round_exact"], atol=1e-12)


def test_pll_targets_top2_with_lower_index_tie_break():
    P = np.array([[0.5, 0.3, 0.2], [0.2, 0.4, 0.4], [1 / 3, 1 / 3, 1 / 3],
                  [0.4, 0.3 - 1e-12, 0.3], [0.4, 0.3 - 1e-6, 0.3]])
    # tolerance 1e-9 (a certificate of 1e-11): the 1e-12 gap of row 3 is a tie
    np.testing.assert_array_equal(pll_targets(P, 1e-9, ties="lower"),
                                  [[0.5, 0.5, 0], [0, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0.5, 0],
                                   [0.5, 0, 0.5]])


def test_tie_tolerance_follows_the_certificate():
    """A real gap of 8e-13 is not a tie for outputs certified to 1e-15 (tolerance 1e-13), and
    is one for outputs certified only to 1e-12 (tolerance 1e-10)."""
    P = np.array([[0.4, 0.3 + 8e-13, 0.3]])
    assert tie_tolerance(1e-15) == 1e-13 and tie_tolerance(0.0) == 1e-13
    np.testing.assert_array_equal(pll_targets(P, tie_tolerance(1e-15), ties="lower"),
                                  [[0.5, 0.5, 0]])
    np.testing.assert_allclose(pll_targets(P, tie_tolerance(1e-12)), [[0.5, 0.25, 0.25]])
    assert accuracy(P, [1], [1], [1], tie_tolerance(1e-15)).all == 0.0
    assert accuracy(P[:, [1, 2, 0]], [0], [0], [1], tie_tolerance(1e-15)).strict == 0.0


def test_uncertainty_carried_along_the_rounds():
    """u_r = c_r + |1 - alpha| u_(r-1) (docs/theory.md section 9), c_r the certificate; 0
    for the closed form, whose outputs carry rounding only."""
    model = two_level(3, 40, 0.4, 0.1)
    C = exact_counts(transition_matrix("sym", 3, 0.3), model.sizes)
    for alpha in (0.0, 0.5):
        res = run_rounds(ExactSolver(gram=model, labels=C, lam=1e-3), 6, label_weight=alpha)
        c, u = res.residual[:, 0], res.uncertainty[:, 0]
        assert c.max() <= 1e-12 and c.min() > 0
        expected = [c[0]]
        for r in range(1, 7):
            expected.append(c[r] + (1.0 - alpha) * expected[-1])
        np.testing.assert_array_equal(u, expected)
    lin = run_rounds(LinearSolver(gram=model, lam=1e-3, labels=C), 6)
    np.testing.assert_array_equal(lin.uncertainty, 0.0)


def test_late_rounds_within_the_carried_uncertainty_are_ties():
    """Delta < 0 (5 true and 11 of every wrong label, K = 6): the outputs reach 1/K to well
    within the error their targets carry from earlier rounds, and each such round scores the
    tie value 1/K. With the round's own certificate as the tolerance, a round whose Newton
    step happened to reach 1e-17 once scored 1.0 (measured: docs/theory.md section 9)."""
    K = 6
    C = np.full((K, K), 11)
    np.fill_diagonal(C, 5)
    res = run_rounds(ExactSolver(gram=two_level(K, 60, 0.4, 0.1), labels=C, lam=1e-2), 60,
                     keep_outputs=True)
    assert res.residual.max() <= 1e-12
    tau = tie_tolerance(res.uncertainty[:, 0])
    spread = np.array([np.ptp(P[0]) for P in res.outputs])
    tied = spread <= tau
    # the last 20 rounds lie within 1/K of uniform by far less than their tolerance
    assert tied[-20:].all() and (spread[-20:] <= 0.1 * tau[-20:]).all()
    np.testing.assert_allclose(res.train_acc[tied, 0], 1.0 / K, rtol=1e-12)
    assert np.nanmax(res.train_acc) <= 1.0 / K + 1e-12


def test_accuracy_weights_and_ties_broken_at_random():
    P = np.array([[0.6, 0.4], [0.5, 0.5], [0.3, 0.7], [0.25, 0.75]])
    true, given = np.array([0, 0, 1, 0]), np.array([0, 1, 0, 0])
    acc = accuracy(P, true, given, [2, 1, 1, 0])
    # unit 1 is an exact tie between two classes: credit 1/2 (strict: wrong); unit 3 weighs 0
    assert acc == (3.5 / 4, 1.0, 1.5 / 2, 3.0 / 4)
    # outputs within round-off of uniform: every class tied, credit 1/K
    U = np.full((2, 4), 0.25) + np.array([[1e-16, 0, 0, 0], [0, 0, 3e-16, 0]])
    assert accuracy(U, [0, 1], [0, 1], [1, 1]) == (0.25, 0.25, None, 0.0)


def test_rounds_must_be_nonnegative():
    model = two_level(2, 3, 0.5, 0.1)
    with pytest.raises(ValueError, match="rounds"):
        self_distill(ExactSolver(gram=model, labels=[[3, 0], [0, 3]], lam=1e-2), rounds=-1)


def test_pll_split_ties_is_the_mean_over_tie_breaks():
    P = np.array([[0.4, 0.2, 0.2, 0.2], [0.3, 0.3, 0.3, 0.1], [0.5, 0.3, 0.1, 0.1]])
    T = pll_targets(P, ties="split")
    np.testing.assert_allclose(T, [[0.5, 1 / 6, 1 / 6, 1 / 6], [1 / 3, 1 / 3, 1 / 3, 0],
                                   [0.5, 0.5, 0, 0]], atol=1e-15)
    np.testing.assert_allclose(T.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="ties"):
        pll_targets(P, ties="random")


@pytest.mark.parametrize("lam", [1e-4, 1e-3, 1e-2, 1e-1])
def test_lower_index_tie_rule_collapses_pll_to_class_0_without_noise(lam):
    """Noise-free labels: every teacher output has its wrong classes tied. The lower-index rule
    names class 0 as every other class's second candidate and the PLL student predicts class 0:
    25% for every lam from 1e-4 to 1e-1; splitting ties (the default) keeps it at 100%."""
    model = two_level(4, 50, 0.4, 0.1)
    solver = ExactSolver(gram=model, labels=np.diag([50] * 4), lam=lam)
    lower = self_distill(solver, rounds=0, pll=True, pll_ties="lower")
    split = self_distill(solver, rounds=0, pll=True)
    assert lower.rounds[0].train_acc == 1.0
    assert lower.pll.train_acc == lower.pll.train_acc_strict == 0.25
    assert split.pll.train_acc == 1.0


def test_lower_index_collapse_is_not_25_percent_with_noise():
    """With symmetric noise the lower-index rule's PLL accuracy depends on lam (measured:
    eta = 0.1 gives 0.52 at lam = 1e-4 and 0.25 at lam = 1e-1), so the 25% belongs to
    noise-free counts only."""
    model = two_level(4, 50, 0.4, 0.1)
    C = exact_counts(transition_matrix("sym", 4, 0.1), model.sizes)
    accs = [self_distill(ExactSolver(gram=model, labels=C, lam=lam), 0, pll=True,
                         pll_ties="lower").pll.train_acc for lam in (1e-4, 1e-1)]
    assert accs == [0.52, 0.25]


def test_delta_zero_unbalanced_counts_can_still_reach_full_accuracy():
    """Delta > 0 is necessary only for balanced counts: a counter-example (exact solver)."""
    from sdtheory.noise import delta, is_balanced

    counts = np.array([[23, 22, 4], [9, 20, 20], [17, 11, 21]])
    assert delta(counts) == 0.0 and not is_balanced(counts)
    model = two_level(3, 49, 0.5246, 0.2211)
    res = self_distill(ExactSolver(gram=model, labels=counts, lam=2.9e-5), rounds=210)
    assert res.r_star == 206
    # round 205 misses by a margin far above the certificate, round 206 clears it
    m205, m206 = (margins(res.rounds[r].P, res.true).min() for r in (205, 206))
    assert m205 == pytest.approx(-2.5625e-5, rel=1e-3) and m206 == pytest.approx(2.339e-4,
                                                                                  rel=1e-3)
    assert max(res.rounds[r].residual for r in (205, 206)) <= 1e-12


# --------------------------------------------------------------------------------------------
# Decision margins (sdtheory.metrics, docs/theory.md section 9)
# --------------------------------------------------------------------------------------------

def _credit_changes(P, true, tol):
    """Brute force: does the credit of a single unit change when the tolerance is scaled to
    10 tol or (just above) tol / 10? The tied set grows monotonically with the tolerance and
    the credit 0 -> 1/t -> smaller moves one way, so the two ends decide."""
    from sdtheory.metrics import credit

    c = credit(P, true, tol)
    return bool(credit(P, true, 10 * tol) != c or credit(P, true, tol / 10 * (1 + 1e-9)) != c)


def test_decision_margin_is_exactly_where_the_credit_moves(rng):
    """On random units with near-ties (gaps 1e-16 to 1e-10 around tau = 1e-13), a unit is
    fragile by its decision margin iff its credit changes with the tolerance scaled by 10 or
    1/10 (brute force); exact ties (gap 0) never count."""
    from sdtheory.metrics import decision_margins, fragile

    tol = 1e-13
    seen = {True: 0, False: 0}
    for _ in range(400):
        K = int(rng.integers(2, 6))
        P = np.full((1, K), 0.3) - 10 ** rng.uniform(-16, -10, (1, K)) * rng.integers(0, 2, (1, K))
        P[0, rng.integers(0, K)] += float(rng.choice([0.0, 10 ** rng.uniform(-15, -11), 0.1]))
        true = np.array([int(rng.integers(0, K))])
        x, _ = decision_margins(P, true, np.ones(1), tol)
        want = _credit_changes(P, true, tol)
        assert bool(fragile(x)) == want, (P, true, x)
        seen[want] += 1
    assert min(seen.values()) > 50                     # both verdicts well represented


def test_decision_and_smallest_margins_of_known_outputs():
    """A true class ahead by 5e-13 with tau = 1e-13: decision margin 5, fragile; smallest
    margin 5. Exactly tied outputs: no gap the tolerance can cross (inf, not fragile). A true
    class 0.2 behind two classes tied within 5e-14: its credit is 0 at any tolerance below
    0.2, so the tie between the others does not count."""
    from sdtheory.metrics import decision_margins, fragile

    P = np.array([[0.4 + 5e-13, 0.4, 0.2], [1 / 3, 1 / 3, 1 / 3], [0.2, 0.4, 0.4 - 5e-14]])
    true = np.array([0, 1, 0])
    d, s = decision_margins(P[:1], true[:1], np.ones(1), 1e-13)
    assert d == pytest.approx(5.0, rel=1e-3) and s == pytest.approx(5.0, rel=1e-3)
    assert fragile(d)
    d, s = decision_margins(P[1:2], true[1:2], np.ones(1), 1e-13)
    assert d == np.inf and s == 0.0 and not fragile(d)
    d, _ = decision_margins(P[2:], true[2:], np.ones(1), 1e-13)
    assert d == pytest.approx(0.2 / 1e-13, rel=1e-9) and not fragile(d)
    # units of weight 0 are left out
    d, s = decision_margins(P, true, np.array([0.0, 1.0, 1.0]), 1e-13)
    assert d > 1e11 and s < 0


def test_rounds_mark_the_documented_near_ties():
    """docs/theory.md section 9: noise-free labels, K = 4, n = 500, lam = 1, closed form: the
    true-class margin is 7.4e-13 at round 6 and 1.4e-14 at round 7 (tau = 1e-13), so exactly
    rounds 6 and 7 are fragile, and r* = 0 is not."""
    m = two_level(4, 500, 0.4, 0.1)
    res = self_distill(LinearSolver(gram=m, labels=np.diag([500] * 4), lam=1.0), 9)
    frag = [rr.fragile for rr in res.rounds]
    assert [r for r, f in enumerate(frag) if f] == [6, 7]
    assert res.rounds[6].min_margin == pytest.approx(7.4, rel=0.05)
    assert res.rounds[7].min_margin == pytest.approx(0.14, rel=0.05)
    assert res.r_star == 0 and not res.r_star_fragile


def test_r_star_fragile_equals_recounting_with_scaled_tolerances():
    """Rounds.r_star_fragile against r* recounted from the kept outputs with the tolerance
    scaled by 10 and 1/10: teachers trained on targets 1/K + eps (one-hot true class - 1/K),
    eps from 1e-15 to 1e-9, whose margins sweep through the tie tolerance round by round,
    and plain labels at lam from 1e-2 to 1e2."""
    from sdtheory.metrics import correct

    m = two_level(4, 50, 0.4, 0.1)
    C = exact_counts(transition_matrix("sym", 4, 0.3), [50] * 4)
    seen = set()
    for lam, eps in [(1.0, e) for e in np.geomspace(1e-15, 1e-9, 13)] + [
            (lam, None) for lam in (1e-2, 0.3, 1.0, 3.0, 1e2)]:
        s = LinearSolver(gram=m, labels=C, lam=lam)
        t0 = None if eps is None else (0.25 + eps * (np.eye(4)[s.true] - 0.25))[None]
        res = run_rounds(s, 12, keep_outputs=True, targets0=t0)

        def first(f, res=res, s=s):
            ok = [bool(np.all(correct(P[0], s.true, f * res.tie_tol[r, 0])
                              | (s.weight[0] == 0))) for r, P in enumerate(res.outputs)]
            return ok.index(True) if True in ok else -1
        r0 = first(1.0)
        assert r0 == int(res.r_star[0])
        moved = first(10.0) != r0 or first(0.1 * (1 + 1e-9)) != r0
        assert bool(res.r_star_fragile[0]) == moved, (lam, eps)
        seen.add(moved)
    assert seen == {True, False}


@pytest.mark.parametrize("pending", [None, 1])
def test_batched_round_metrics_equal_each_round_computed_alone(monkeypatch, pending):
    """run_rounds computes the accuracies and decision margins of many rounds in one batch
    (with ``pending`` = 1 output number held: one round at a time); every round's numbers equal
    accuracy and decision_margins of that round's kept outputs, bit for bit, also after the
    batch of problems shrinks (until_perfect: the noise-free problem stops at round 0)."""
    from sdtheory import distill
    from sdtheory.metrics import decision_margins
    from sdtheory.models import Features
    from sdtheory.noise import corruption_from_labels

    if pending is not None:
        monkeypatch.setattr(distill, "_PENDING_FLOATS", pending)
    rng = np.random.default_rng(3)
    N, D, K = 120, 30, 3
    y = np.arange(N) % K
    X = np.eye(K)[y] @ rng.standard_normal((K, D)) + 0.8 * rng.standard_normal((N, D))
    sets = [corruption_from_labels(y, np.where(rng.random(N) < rate, rng.integers(0, K, N), y),
                                   K) for rate in (0.0, 0.3, 0.6)]
    solver = ExactSolver(gram=Features(X), labels=sets, lam=1e-3)
    res = run_rounds(solver, 5, until_perfect=True, keep_outputs=True)
    assert res.r_star[0] == 0 and np.isnan(res.train_acc[1:, 0]).all()
    checked = 0
    for r, P in enumerate(res.outputs):
        for b in np.flatnonzero(~np.isnan(res.residual[r])):
            tol = tie_tolerance(res.uncertainty[r, b])
            want = accuracy(P[b], solver.true, solver.given[b], solver.weight[b], tol)
            got = [res.train_acc[r, b], res.clean_acc[r, b], res.noisy_acc[r, b],
                   res.strict_acc[r, b]]
            np.testing.assert_array_equal(got, [np.nan if v is None else v for v in want])
            np.testing.assert_array_equal(
                [res.decision_margin[r, b], res.min_margin[r, b]],
                decision_margins(P[b], solver.true, solver.weight[b], tol))
            checked += 1
    assert checked >= 1 + 2 * 6 - 2
