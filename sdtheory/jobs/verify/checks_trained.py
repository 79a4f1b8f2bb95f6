"""``sdtheory verify`` check: gradient-trained linear models against the closed forms.

The statement: a bias-free
linear softmax classifier trained by L-BFGS to convergence on explicit features (X X^T = G)
outputs the exact solution of (E) in every SD round and for the PLL student; the linearised
closed form (L) is a different model, and its gap to the trained one is reported per round.
"""

from __future__ import annotations

import numpy as np

from sdtheory.jobs.verify.harness import Tally, check

AGREE_TOL = 1e-6


def _group_gap(a: dict, b: dict) -> float:
    return max(float(np.abs(np.subtract(ga["p"], gb["p"])).max())
               for ga, gb in zip(a["groups"], b["groups"]))


@check("trained_vs_closed_form",
       "L-BFGS-trained linear softmax (X X^T = G) equals the exact solver of (E) in every SD round "
       f"and for the PLL student, K=4, n=100, lam in {{1e-3, 1e-2}}: margin = {AGREE_TOL:g} - "
       "max group-output gap; the linearised form's gap to training is noted per round")
def _trained_vs_closed_form(t: Tally) -> None:
    from sdtheory.jobs.simulate import SimConfig, simulate

    rounds = 2 if t.quick else 4
    for lam in (1e-3, 1e-2):
        for eta in ((0.4,) if t.quick else (0.2, 0.4, 0.6)):
            cfg = SimConfig(K=4, n=100, c=0.4, d=0.1, lam=lam, noise="sym", eta=eta,
                            rounds=rounds, pll=True, solvers=("exact", "trained", "linear"))
            doc = simulate(cfg)
            ex, tr, li = (doc["solvers"][k] for k in ("exact", "trained", "linear"))
            pairs = list(zip(ex["rounds"], tr["rounds"])) + [(ex["pll"], tr["pll"])]
            gaps = [_group_gap(a, b) for a, b in pairs]
            worst = max(gaps)
            t.case({"lam": lam, "eta": eta, "K": 4, "n": 100, "rounds": rounds},
                   AGREE_TOL - worst, max_gap_per_round_and_pll=gaps)
            lin = [_group_gap(a, b) for a, b in zip(li["rounds"], tr["rounds"])]
            t.note(f"lam={lam:g} eta={eta}: trained vs exact <= {worst:.1e}; linearised vs "
                   "trained per round: " + ", ".join(f"{g:.3f}" for g in lin))
