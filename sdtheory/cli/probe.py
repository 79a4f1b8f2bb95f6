"""``sdtheory probe``: linear probing on real features (the paper's real-data experiment)."""

from __future__ import annotations

from sdtheory.cli import EXIT_OK, Formatter, UsageError, add_executor_options

DESCRIPTION = """\
Linear probing on fixed features, as in the paper's real-data experiment: for every noise
type, noise rate and seed, corrupt the training labels (sampled per class), then train a
teacher, R students (each from scratch on the previous round's softmax outputs) and one PLL
student (on the teacher's top-2 classes). Reports per (noise, eta, seed, round | PLL) the
accuracy on the given and on the true training labels, the test accuracy and, for the closed
engine, the certificate of (E); the realised noise rate and Delta of each corruption; the
block statistics (c, d, e) of the features and the theory r* of that block model.

Writes into --out: probe.csv (one row per training; columns noise, eta, seed, realised_rate,
delta, round, acc_given, acc_true, test_acc, certificate; two comment lines with the version
and the config), probe.json (everything, with the gains), probe_gain.png (distillation gain
against eta, one panel per noise type) and probe_correlation.png (class correlations ordered
by the superclass dendrogram). Feature files: .npz with X_train (N x D), y_train (N,),
X_test (M x D), y_test (M,), optional class_names; labels 0..K-1, every class in the training
set. Everything runs offline (docs/theory.md section 13)."""

EPILOG = """\
engines:
  closed   the exact solver of (E) with G = X X^T, in feature space (training to
           convergence; every student, the PLL student too, with cross-entropy)
  trained  SGD by --protocol selfpll, the authors' recipe: momentum 0.9, lr 0.1 x 0.98 per
           epoch, 200 epochs, batch 128, weight decay lam, no bias, weights from zero each
           round; the PLL student starts from the teacher and trains the generalised
           cross-entropy (q = 0.7) over the teacher's top two classes. The last epoch is
           used unless --select-best-epoch-on-test (which selects on the test set).

examples:
  sdtheory probe --dataset digits --feature-map l2 --out out/probe
  sdtheory probe --features my_features.npz --noise sym,superclass --rates 0,.2,.4 --seeds 0"""


def add_parser(sub) -> None:
    from sdtheory.featuredata import DATASETS, FEATURE_MAPS
    from sdtheory.jobs.probe import DEFAULT_RATES, DEFAULT_SEEDS, ENGINES, PROTOCOLS
    from sdtheory.noise import KINDS
    from sdtheory.relation import METHODS

    p = sub.add_parser("probe", formatter_class=Formatter, description=DESCRIPTION,
                       epilog=EPILOG,
                       help="linear probing on real features: SD and PLL students, noise "
                            "sweeps, CSV + figures")
    src = p.add_argument_group("data (one of)")
    src.add_argument("--features", metavar="FILE.npz", default=None,
                     help="feature file with X_train, y_train, X_test, y_test")
    src.add_argument("--dataset", metavar="NAME", default=None,
                     help="bundled dataset: " + "; ".join(f"{k}: {v}" for k, v in DATASETS.items())
                          + " (default when --features is absent: digits)")
    p.add_argument("--feature-map", choices=FEATURE_MAPS, default="raw",
                   help="raw (as stored, the authors' choice), standard (columns centred and "
                        "scaled with training statistics) or l2 (rows of unit norm)")
    p.add_argument("--noise", default="sym,asym,superclass", metavar="LIST",
                   help="comma-separated noise types from " + ", ".join(KINDS)
                        + " (superclasses: complete-linkage clustering of the class-mean "
                          "correlations; a class alone in its cluster keeps its labels)")
    p.add_argument("--rates", default=",".join(f"{r:g}" for r in DEFAULT_RATES), metavar="LIST",
                   help="comma-separated target noise rates in [0, 1)")
    p.add_argument("--seeds", default=",".join(str(s) for s in DEFAULT_SEEDS), metavar="LIST",
                   help="comma-separated seeds (>= 0) of the sampled noise and of SGD")
    p.add_argument("--rounds", type=int, default=4, metavar="R",
                   help="students after the teacher: rounds 0..R")
    p.add_argument("--lam", type=float, default=1e-3,
                   help="ridge / weight decay lam, in [1e-8, 1e3]")
    p.add_argument("--engine", choices=ENGINES, default="closed", help="see below")
    p.add_argument("--protocol", choices=PROTOCOLS, default="selfpll",
                   help="recipe of the trained engine")
    p.add_argument("--select-best-epoch-on-test", action="store_true",
                   help="trained engine: keep the epoch with the best TEST accuracy, as the "
                        "authors report (this selects on the test set)")
    p.add_argument("--epochs", type=int, default=200, help="trained engine: SGD epochs")
    p.add_argument("--superclass-cut", type=float, default=0.8, metavar="F",
                   help="cut the dendrogram at F x the largest linkage distance")
    p.add_argument("--method", choices=METHODS, default="sd",
                   help="sd: each student trains on the previous round's outputs; relation: "
                        "on ALPHA x labels + (1 - ALPHA) x R x outputs, R the k-nearest-"
                        "neighbour cosine relation matrix of a label-free view (the features, "
                        "or --relation-features): the fixed-feature analogue of RMDNet")
    p.add_argument("--label-weight", type=float, default=0.0, metavar="ALPHA",
                   help="weight of the given labels in the targets of rounds >= 1, in [0, 1]")
    p.add_argument("--relation-features", metavar="FILE.npz", default=None,
                   help="relation: a second feature file of the same training samples (its "
                        "X_train rows in the same order) as the label-free view")
    p.add_argument("--relation-k", type=int, default=10, help="relation: neighbours per sample")
    p.add_argument("--relation-tau", type=float, default=0.1,
                   help="relation: temperature of the weights exp(cosine / tau)")
    p.add_argument("--out", metavar="DIR", default="out/probe", help="directory for results")
    add_executor_options(p)


def _list(text: str, name: str, cast) -> list:
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise UsageError(f"{name} must be a comma-separated list, got {text!r}")
    out = []
    for t in items:
        try:
            out.append(cast(t))
        except ValueError:
            kind = "integer" if cast is int else "number"
            raise UsageError(f"{name}: {t!r} is not a{'n' if kind == 'integer' else ''} "
                             f"{kind}") from None
    return out


def run(args) -> int:
    from sdtheory import featuredata
    from sdtheory._io import Outputs, write_json, write_text
    from sdtheory.cli import refuse_unused
    from sdtheory.jobs import probe
    from sdtheory.plots.probe import plot_probe_correlation, plot_probe_gain
    from sdtheory.results import probe_csv_text

    trained, relation = args.engine == "trained", args.method == "relation"
    refuse_unused(args, [
        ("epochs", 200, trained, "--engine trained"),
        ("protocol", "selfpll", trained, "--engine trained"),
        ("relation_k", 10, relation, "--method relation"),
        ("relation_tau", 0.1, relation, "--method relation"),
    ])
    if args.dataset == "":
        raise UsageError("--dataset must name a bundled dataset, got ''")
    dataset = args.dataset if args.dataset or args.features else "digits"
    cfg = probe.ProbeConfig(
        features=args.features, dataset=dataset, feature_map=args.feature_map,
        noise=tuple(_list(args.noise, "--noise", str)),
        rates=tuple(_list(args.rates, "--rates", float)),
        seeds=tuple(_list(args.seeds, "--seeds", int)),
        rounds=args.rounds, lam=args.lam, engine=args.engine, protocol=args.protocol,
        select_on_test=args.select_best_epoch_on_test, superclass_cut=args.superclass_cut,
        epochs=args.epochs, method=args.method, label_weight=args.label_weight,
        relation_features=args.relation_features, relation_k=args.relation_k,
        relation_tau=args.relation_tau, executor=args.executor, workers=args.workers,
        scheduler=args.scheduler)
    names = ("probe.csv", "probe.json", "probe_gain.png", "probe_correlation.png")
    outputs = Outputs(args.out, names)
    data = (featuredata.load_features(cfg.features) if cfg.features
            else featuredata.load_dataset(cfg.dataset))
    data = featuredata.feature_map(data, cfg.feature_map)
    view = None
    if cfg.relation_features:
        view = featuredata.load_features(cfg.relation_features).X_train
        if view.shape[0] != data.N:
            raise UsageError(f"--relation-features has {view.shape[0]} training rows but the "
                             f"probed features have {data.N}")
    res = probe.run_probe(cfg, data, relation_view=view)
    doc = probe.to_doc(res)
    with outputs:
        write_text(outputs.path("probe.csv"), probe_csv_text(doc))
        write_json(outputs.path("probe.json"), doc)
        plot_probe_gain(doc, outputs.path("probe_gain.png"))
        plot_probe_correlation(doc, outputs.path("probe_correlation.png"))
    print(probe.format_summary(res))
    print()
    for name in names:
        print(outputs.final(name))
    return EXIT_OK
