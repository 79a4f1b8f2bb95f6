"""Rounds of SD and the PLL student, against the public reference vectors."""

import numpy as np
import pytest

from sdtheory.distill import pll_targets, self_distill
from sdtheory.metrics import accuracy
from sdtheory.models import two_level
from sdtheory.noise import corrupt_exact, transition_matrix
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
    np.testing.assert_array_equal(pll_targets(P), [[0.5, 0.5, 0], [0, 0.5, 0.5], [0.5, 0.5, 0],
                                                   [0.5, 0.5, 0], [0.5, 0, 0.5]])


def test_accuracy_weights_and_strict_ties():
    P = np.array([[0.6, 0.4], [0.5, 0.5], [0.3, 0.7]])
    true, given = np.array([0, 0, 1]), np.array([0, 1, 0])
    acc, clean, noisy = accuracy(P, true, given, [2, 1, 1])
    # unit 1 is an exact tie: not correct
    assert (acc, clean, noisy) == (0.75, 1.0, 0.5)


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


def test_lower_index_tie_rule_biases_pll_to_class_0_without_noise():
    """Clean labels, large lam: every clean teacher output has its wrong classes tied. The
    lower-index rule names class 0 as every other class's second candidate and the PLL student
    collapses towards class 0; splitting ties keeps it at 100%."""
    model = two_level(4, 50, 0.4, 0.1)
    counts = np.diag([50] * 4)
    lower = self_distill(ExactSolver(gram=model, labels=counts, lam=1e-1), rounds=0, pll=True)
    split = self_distill(ExactSolver(gram=model, labels=counts, lam=1e-1), rounds=0, pll=True,
                         pll_ties="split")
    assert lower.rounds[0].train_acc == 1.0
    assert lower.pll.train_acc <= 0.5
    assert split.pll.train_acc == 1.0


def test_delta_zero_unbalanced_counts_can_still_reach_full_accuracy():
    """Delta > 0 is necessary only for balanced counts: a counter-example (exact solver)."""
    from sdtheory.noise import delta, is_balanced

    counts = np.array([[23, 22, 4], [9, 20, 20], [17, 11, 21]])
    assert delta(counts) == 0.0 and not is_balanced(counts)
    model = two_level(3, 49, 0.5246, 0.2211)
    res = self_distill(ExactSolver(gram=model, labels=counts, lam=2.9e-5), rounds=210)
    assert res.r_star is not None and 150 < res.r_star <= 210
