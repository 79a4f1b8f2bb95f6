"""``sdtheory optimize``: the ridge, label weight and round that correct every training label
with the largest margin, from gradients of the closed form."""

from __future__ import annotations

import json

from sdtheory.cli import (
    EXIT_OK,
    Formatter,
    UsageError,
    add_model_options,
    add_noise_options,
    problem_config,
)

DESCRIPTION = """\
For a block model (two- or three-level, equal class sizes) and a noise setting (exact counts),
find for each round r = 0..R the ridge lam in [1e-8, 1e3] and the label weight alpha in [0, 1]
(targets alpha Y + (1 - alpha) P_(r-1) from round 1 on; --label-weight fixes it) that maximise
the worst training-label margin of the linearised student (L): every label is corrected iff
that margin is > 0, and a larger margin is a more robust correction. L-BFGS-B on log lam and
alpha with the exact JAX gradient of the closed form (docs/theory.md section 17), several
starts. Prints the optimum per round and the smallest round whose best margin is within 1%
of the best over all rounds (the recommendation). --lam is not used: lam is what is
optimised."""


def add_parser(sub) -> None:
    p = sub.add_parser("optimize", formatter_class=Formatter, description=DESCRIPTION,
                       help="best lam, label weight and rounds for a noise level (closed form)")
    add_model_options(p)
    add_noise_options(p)
    p.add_argument("--max-rounds", type=int, default=20, metavar="R",
                   help="optimise rounds 0..R")
    p.add_argument("--label-weight", type=float, default=None, metavar="ALPHA",
                   help="fix alpha in [0, 1] instead of optimising it")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--out", metavar="DIR", default=None, help="also write optimize.json into DIR")


def run(args) -> int:
    from dataclasses import asdict

    from sdtheory import __version__
    from sdtheory._io import Outputs, write_json
    from sdtheory._memory import check_memory
    from sdtheory._validate import as_int, check_label_weight
    from sdtheory.jobs.optimize import memory_estimate, optimize, recommend
    from sdtheory.problem import build_problem

    if args.model == "gmm":
        raise UsageError("--model gmm has no closed-form margins: use block or superclass")
    if args.jitter:
        raise UsageError("--jitter: the closed-form margins need an exact block model (drop "
                         "--jitter)")
    if args.sampled:
        raise UsageError("--sampled: the closed-form margins use exact counts (drop --sampled)")
    R = as_int(args.max_rounds, "max-rounds", lo=0, hi=1000)
    alpha = None
    if args.label_weight is not None:
        alpha = check_label_weight(args.label_weight, softmax=True)
    cfg = problem_config(args)
    outputs = Outputs(args.out, ["optimize.json"]) if args.out else None
    check_memory(*memory_estimate(cfg.K))        # before the K x K counts are built
    p = build_problem(cfg)
    rows = [asdict(o) for o in optimize(p.model, p.corruption.counts, range(R + 1),
                                        fix_label_weight=alpha)]
    doc = {"config": {**cfg.to_dict(), "max_rounds": R, "label_weight": alpha},
           "version": __version__, "counts": p.corruption.counts.tolist(), "rounds": rows,
           "recommended": recommend(rows)}
    if outputs is not None:
        with outputs:
            write_json(outputs.path("optimize.json"), doc)
    if args.json:
        print(json.dumps(doc))
        return EXIT_OK
    print(f"sdtheory {__version__}  optimize  model={cfg.model} K={cfg.K} n={cfg.n} c={cfg.c} "
          f"d={cfg.d}  noise={cfg.noise} eta={cfg.eta} (exact counts)"
          + ("" if alpha is None else f"  label weight fixed at {alpha:g}"))
    print(" round        lam*   alpha*   worst margin  corrected")
    for r in rows:
        print(f" {r['round']:5d}  {r['lam']:10.3e}  {r['label_weight']:6.3f}  {r['margin']:13.6f}"
              f"  {'yes' if r['corrected'] else 'no'}")
    rec = doc["recommended"]
    print("recommended: " + ("no round in 0..R corrects every label" if rec is None else
                             f"round {rec['round']}, lam = {rec['lam']:.3e}, alpha = "
                             f"{rec['label_weight']:.3f} (margin {rec['margin']:.4f}, within 1% "
                             f"of the best over rounds 0..{R})"))
    return EXIT_OK
