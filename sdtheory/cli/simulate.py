"""``sdtheory simulate``: one model, one noise setting, R rounds of SD (+ PLL)."""

from __future__ import annotations

import json
import sys

from sdtheory.cli import (
    EXIT_FAIL,
    EXIT_OK,
    Formatter,
    add_model_options,
    add_noise_options,
    problem_config,
)

DESCRIPTION = """\
Train the teacher (round 0) on the given labels and R students, each on the previous round's
outputs, with the exact solver of the fixed point (E), the linearised closed form (L), and/or a
gradient-trained linear softmax model. Prints a table (or JSON) of every round's accuracy on
all / clean / noisy training samples and its certificate.

Ties (docs/theory.md section 9): outputs closer than 100 x their certificate (1e-13 for the
closed form) are tied. train_acc credits a true class tied with t classes for the top with 1/t,
the exact expectation under random tie-breaking (outputs within round-off of uniform score
1/K); a "strict" column, where a tie counts as wrong, appears where it differs. r* is the first
round in which every sample is strictly correct. A certificate above the solver's tolerance,
accepted at the float64 round-off floor, is marked with *."""


def add_parser(sub) -> None:
    from sdtheory.relation import METHODS

    p = sub.add_parser("simulate", formatter_class=Formatter, description=DESCRIPTION,
                       help="one model, one noise setting, R rounds of SD (+ PLL)")
    add_model_options(p)
    add_noise_options(p)
    p.add_argument("--rounds", type=int, default=10, metavar="R", help="simulate rounds 0..R")
    p.add_argument("--solver", choices=["exact", "linear", "both", "trained"], default="both",
                   help="exact fixed point (E), linearised closed form (L), both, or a "
                        "gradient-trained linear softmax model (L-BFGS)")
    p.add_argument("--pll", action="store_true",
                   help="also train the PLL student (top-2 of the teacher)")
    p.add_argument("--pll-ties", choices=["split", "lower"], default="split",
                   help="PLL top-2 tie rule: split the 1/2 equally among the classes "
                        "tied at a rank (the mean over random tie-breaks), or give it to the "
                        "lower class index. Outputs within 100 x the teacher's certificate are "
                        "tied (docs/theory.md section 9)")
    p.add_argument("--loss", choices=["ce", "mse"], default="ce",
                   help="ce: softmax with cross-entropy (the paper); mse: the squared loss, "
                        "kernel-ridge SD, whose closed form is exact (runs the linear solver "
                        "only, docs/theory.md section 14)")
    p.add_argument("--label-weight", type=float, default=0.0, metavar="ALPHA",
                   help="rounds >= 1 train on ALPHA x given labels + (1 - ALPHA) x the previous "
                        "round's outputs (Borup & Andersen's alpha; Das & Sanghavi's teacher "
                        "weight xi = 1 - ALPHA); in [0, 1] for ce, any number for mse")
    p.add_argument("--method", choices=METHODS, default="sd",
                   help="sd: each round trains on the previous round's outputs (with "
                        "--label-weight, mixed with the labels); relation: on ALPHA x labels + "
                        "(1 - ALPHA) x R x outputs, R a k-nearest-neighbour relation matrix of "
                        "a label-free view (the fixed-feature analogue of RMDNet's relation "
                        "distillation, docs/theory.md section 15)")
    p.add_argument("--relation-view", choices=["gmm", "features", "block"], default="gmm",
                   help="relation: a second Gaussian-mixture view of the true classes with "
                        "signal-to-noise ratio --relation-snr, the model's own features "
                        "(--model gmm), or a block-constant relation with --relation-purity "
                        "of its mass on the own class (block models stay group-reduced)")
    p.add_argument("--relation-purity", type=float, default=0.9, metavar="Q",
                   help="relation view block: share of the relation mass on the own class")
    p.add_argument("--relation-snr", type=float, default=1.0, metavar="S",
                   help="relation: ||class mean||^2 / E||noise||^2 of the gmm view (> 0)")
    p.add_argument("--relation-dim", type=int, default=32, help="relation: gmm view dimension")
    p.add_argument("--relation-k", type=int, default=10, help="relation: neighbours per sample")
    p.add_argument("--relation-tau", type=float, default=0.1,
                   help="relation: temperature of the weights exp(cosine / tau)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--out", metavar="DIR", default=None, help="also write result.json into DIR")


def sim_config(args):
    """The validated :class:`~sdtheory.jobs.simulate.SimConfig` of parsed options (shared with
    ``sdtheory explore``, so that both give one message)."""
    from sdtheory.cli import refuse_unused
    from sdtheory.jobs.simulate import SimConfig

    relation = args.method == "relation"
    view = args.relation_view
    refuse_unused(args, [
        ("pll_ties", "split", args.pll, "--pll"),
        ("relation_view", "gmm", relation, "--method relation"),
        ("relation_purity", 0.9, relation and view == "block", "--relation-view block"),
        ("relation_snr", 1.0, relation and view == "gmm", "--relation-view gmm"),
        ("relation_dim", 32, relation and view == "gmm", "--relation-view gmm"),
        ("relation_k", 10, relation and view != "block", "--method relation, view gmm or "
                                                          "features,"),
        ("relation_tau", 0.1, relation and view != "block", "--method relation, view gmm or "
                                                            "features,"),
    ])

    solvers = {"both": ("exact", "linear")}.get(args.solver, (args.solver,))
    if args.loss == "mse" and args.solver == "both":
        solvers = ("linear",)          # the default: the squared loss's closed form is exact
    cfg = problem_config(args, SimConfig, rounds=args.rounds, solvers=solvers, pll=args.pll,
                         pll_ties=args.pll_ties, loss=args.loss, label_weight=args.label_weight,
                         method=args.method, relation_view=args.relation_view,
                         relation_snr=args.relation_snr, relation_dim=args.relation_dim,
                         relation_k=args.relation_k, relation_tau=args.relation_tau,
                         relation_purity=args.relation_purity)
    return cfg


def run(args) -> int:
    from sdtheory._io import Outputs, write_json
    from sdtheory.jobs.simulate import format_table, simulate
    from sdtheory.solvers import SolverError

    cfg = sim_config(args)
    outputs = Outputs(args.out, ["result.json"]) if args.out else None
    try:
        doc = simulate(cfg)
    except SolverError as err:
        print(f"sdtheory simulate: solver failed: {err}", file=sys.stderr)
        return EXIT_FAIL
    if outputs is not None:
        with outputs:
            write_json(outputs.path("result.json"), doc)
    print(json.dumps(doc) if args.json else format_table(doc))
    return EXIT_OK
