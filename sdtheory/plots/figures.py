"""Figure functions: one per figure, each reading only its results file.

Every ``plot_NAME(results, png)`` opens the results file written by :mod:`sdtheory.jobs.figures`
(JSON with the full config and the package version; for the phase diagrams a JSON sidecar
naming the CSVs of :mod:`sdtheory.jobs.sweep`, drawn with :func:`sdtheory.plots.phase.plot_phase`
where one panel suffices), draws the figure in the common style
(:data:`~sdtheory.plots.style.STYLE`, Okabe-Ito colours), puts the parameters in the title and
caption, and writes the PNG through a temporary file. Nothing here solves anything.

Figures are at most about 10.5 inches wide at 130 dpi, so that their text stays legible when
docs/guide.md shows them 600-800 pixels wide. Curves that coincide are drawn so that each stays
visible (line styles, nested markers) and are named as identical in a legend or a note.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sdtheory.plots.phase import (
    cell_edges,
    diverging_white,
    plot_phase,
    single_value_ticks,
)
from sdtheory.plots.style import (
    CLASS_COLORS,
    COLORS,
    LEVEL_COLORS,
    PART_COLORS,
    STYLE,
    caption,
    lam_tex,
    load_results,
    pyplot,
    save,
    stamp,
)

__all__ = [
    "plot_approximation",
    "plot_label_averaging",
    "plot_pll_vs_sd",
    "plot_min_rounds",
    "plot_phase_eta_lam",
    "plot_phase_eta_gap",
    "plot_phase_pll",
    "plot_probe_digits",
    "plot_relation_distillation",
    "plot_ridge_sd_proportional",
    "plot_optimize_eta",
    "identical_groups",
    "SIMPLEX_HEIGHT",
    "ternary",
    "simplex_axes",
    "round_ranges",
]


def _nan(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def identical_groups(curves, atol: float = 1e-9) -> list[list[int]]:
    """Indices of the curves (rows of ``curves``) grouped by equality within ``atol`` at every
    point (NaN equal to NaN); each group in increasing order, groups by their first index."""
    curves = np.asarray(curves, dtype=float)
    groups: list[list[int]] = []
    for i, c in enumerate(curves):
        for g in groups:
            ref = curves[g[0]]
            same = np.isclose(c, ref, rtol=0.0, atol=atol) | (np.isnan(c) & np.isnan(ref))
            if same.all():
                g.append(i)
                break
        else:
            groups.append([i])
    return groups


def round_ranges(rounds: list[int]) -> str:
    """``[0, 1, 2, 4]`` -> ``"0–2, 4"``."""
    parts, start = [], rounds[0]
    for a, b in zip(rounds, rounds[1:] + [None]):
        if b != a + 1:
            parts.append(f"{start}" if start == a else f"{start}–{a}")
            start = b
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------
# approximation
# --------------------------------------------------------------------------------------------

def plot_approximation(results, png) -> None:
    """Exact vs linearised: training accuracy per round up to the exact solver's r*, one
    panel per solver, r* of each marked."""
    plt = pyplot()
    doc = load_results(results)
    cfg = doc["config"]
    last, many, mark = _approximation_rounds(doc)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.3), sharey=True)
        for ax, which in zip(axes, ("exact", "linear")):
            _approximation_panel(ax, doc, which)
        axes[0].set_ylabel("training accuracy vs true labels")

        fig.suptitle(
            rf"Exact vs linearised self-distillation up to the exact $r^*$: $K={cfg['K']}$, "
            rf"$n={cfg['n']}$ ($N={doc['N']}$), $c={cfg['c']}$, $d={cfg['d']}$, "
            rf"$\lambda={lam_tex(cfg['lam'])}$,"
            "\n"
            rf"sampled symmetric noise $\eta={cfg['eta']}$ (realised "
            rf"{doc['realised_noise_rate']:.3f}, $\Delta={doc['delta']:.3f}$), jitter "
            rf"$\varepsilon={cfg['eps']}$", fontsize=11)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3,
                   bbox_to_anchor=(0.5, 0.0), frameon=False, fontsize=9.5)
        gap = doc["max_abs_output_gap"]
        rounds_txt = (f"Rounds 0..{last}: until the exact solver's first round with every "
                      "training label correct" if doc["r_star_exact"] is not None else
                      f"Rounds 0..{last} (max_rounds): the exact solver never reaches 100%")
        caption(fig, (
            rounds_txt + (f" (markers at {len(mark)} log-spaced rounds, lines through every "
                          "round)" if many else "") + "; "
            rf"$r^*$ = first round with 100% training accuracy."
            "\n"
            rf"$G$ = two-level block model + symmetric Uniform$[-\varepsilon, \varepsilon]$ "
            rf"jitter, $\varepsilon={cfg['eps']}$ (smallest eigenvalue "
            rf"{doc['min_eigenvalue']:+.3f}; $\varepsilon \leq {doc['eps_psd_bound']:.4f}$ "
            rf"keeps $G$ PSD at $N={doc['N']}$)."
            "\n"
            rf"The requested $\varepsilon={cfg['eps_requested']}$ makes $G$ indefinite "
            rf"(smallest eigenvalue {doc['min_eigenvalue_requested_eps']:+.2f}); the problem "
            "behind (E) is then unbounded and the exact solver refuses it."
            "\n"
            rf"Largest output gap max$_i\,\|p^E_i - p^L_i\|_\infty$: {gap[0]:.3f} at $r=0$, "
            rf"{max(gap):.3f} at most, {gap[-1]:.3f} at $r={len(gap) - 1}$.   {stamp(doc)}"))
        save(fig, png)


def _approximation_rounds(doc) -> tuple[int, bool, list[int] | None]:
    """(last round, whether there are many, the rounds that get a marker): markers at every
    round, or at about 14 log-spaced rounds when there are many."""
    last = doc["solvers"]["exact"][-1]["round"]
    many = last > 40
    mark = None if not many else sorted(
        {int(v) for v in np.round(np.geomspace(1, last + 1, 14)) - 1} | {last})
    return last, many, mark


def _approximation_panel(ax, doc, which: str) -> None:
    """One solver's panel: accuracy per round on clean, noisy and all samples, r* marked;
    rounds on a symlog axis when there are many."""
    last, many, mark = _approximation_rounds(doc)
    rs = {"exact": doc["r_star_exact"], "linear": doc["r_star_linear"]}[which]
    title = {"exact": "exact students, fixed point (E)",
             "linear": "linearised students, closed form (L)"}[which]
    rows = doc["solvers"][which]
    r = np.array([row["round"] for row in rows])
    for part, marker in (("clean", "o"), ("noisy", "s"), ("all", "D")):
        y = _nan([row[f"{part}_acc" if part != "all" else "train_acc"] for row in rows])
        ax.plot(r, y, marker=marker, ms=4.5 if not many else 5, markevery=mark,
                color=PART_COLORS[part],
                label={"clean": "clean samples (given = true)",
                       "noisy": "noisy samples (given ≠ true)",
                       "all": "all samples"}[part])
    if rs is not None and rs <= last:
        ax.axvline(rs, color="#333333", ls=":", lw=1.3)
        ax.annotate(rf"$r^*={rs}$", xy=(rs, 0.06), xytext=(-4, 0),
                    textcoords="offset points", ha="right", va="center",
                    fontsize=9.5, color="#333333")
    rs_txt = (rf"$r^*={rs}$" if rs is not None and rs <= last else
              rf"$r^*>{last}$" if rs is None else rf"$r^*={rs}$ (beyond the plot)")
    ax.set_title(f"{title}: {rs_txt}")
    ax.set_xlabel("round $r$ (0 = teacher)" + (", symlog scale" if many else ""))
    if many:
        from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

        ax.set_xscale("symlog", linthresh=1.0, linscale=0.4)
        ax.set_xlim(-0.3, last * 1.15)
        ticks = [t for t in (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
                 if t <= last / 1.6] + [last]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(NullLocator())
    else:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(nbins=13, integer=True))
        ax.set_xlim(-0.6, last + 0.6)
    ax.set_ylim(-0.03, 1.03)


# --------------------------------------------------------------------------------------------
# label_averaging
# --------------------------------------------------------------------------------------------

SIMPLEX_HEIGHT = np.sqrt(3.0) / 2.0
"""Height of the unit equilateral triangle that shows the K = 3 probability simplex."""


def ternary(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric map of K = 3 distributions: e0 -> (0, 0), e1 -> (1, 0), e2 -> (1/2, s3/2)."""
    P = np.asarray(P)
    return P[:, 1] + 0.5 * P[:, 2], SIMPLEX_HEIGHT * P[:, 2]


def simplex_axes(ax) -> None:
    """Draw the K = 3 simplex (edges, centre, class names) on ``ax`` and frame it."""
    ax.plot([0, 1, 0.5, 0], [0, 0, SIMPLEX_HEIGHT, 0], color="#444444", lw=1.0, zorder=1)
    ax.plot([1 / 2], [SIMPLEX_HEIGHT / 3], marker="+", color="#444444", ms=8, zorder=1)
    for k, (x, y, ha, va) in enumerate([(0.0, -0.04, "center", "top"),
                                        (1.0, -0.04, "center", "top"),
                                        (0.5, SIMPLEX_HEIGHT + 0.03, "center", "bottom")]):
        ax.text(x, y, f"class {k}", ha=ha, va=va, color=CLASS_COLORS[k], fontsize=10,
                fontweight="bold")
    ax.set_xlim(-0.12, 1.12)
    ax.set_ylim(-0.14, SIMPLEX_HEIGHT + 0.12)
    ax.set_aspect("equal")
    ax.set_anchor("N")
    ax.axis("off")


_LEVEL_NAMES = {"global": r"global $a_1$", "superclass": "superclass",
                "class": r"class $a_2$", "instance": r"instance $a_3$"}


def plot_label_averaging(results, png) -> None:
    """Ternary plots of the outputs of every instance per round, and the shrink per level:
    closed form a_j^(r+1) against the exact outputs on the pure block model (and, faint, with
    the jitter of the simplex panels)."""
    plt = pyplot()
    doc = load_results(results)
    cfg = doc["config"]
    shown = list(doc["outputs"])
    with plt.rc_context(STYLE):
        ncol = 3
        nrow = int(np.ceil((len(shown) + 1) / ncol))
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.45 * ncol, 2.8 * nrow + 0.5))
        axes = np.atleast_1d(axes).ravel()
        _simplex_panels(axes, doc, shown)
        for ax in axes[len(shown):-1]:
            ax.axis("off")
        _shrink_panel(axes[-1], doc)
        fig.legend(handles=_sample_handles(), loc="upper center", ncol=6,
                   bbox_to_anchor=(0.5, 0.925), frameon=False, fontsize=8.5,
                   columnspacing=1.0, handletextpad=0.3)
        fig.suptitle(
            rf"Label averaging: outputs of all $N={doc['N']}$ training instances on the simplex,"
            rf" exact solver (E)"
            "\n"
            rf"$K={cfg['K']}$, $n={cfg['n']}$, $c={cfg['c']}$, $d={cfg['d']}$, "
            rf"$\lambda={lam_tex(cfg['lam'])}$, symmetric noise $\eta={cfg['eta']}$ "
            rf"(exact counts), jitter $\varepsilon={cfg['eps']}$",
            fontsize=11, y=0.995)
        fig.subplots_adjust(top=0.82, bottom=0.08, left=0.03, right=0.985, hspace=0.28,
                            wspace=0.3)
        caption(fig, _label_averaging_caption(doc))
        save(fig, png)


def _simplex_panels(axes, doc, shown) -> None:
    """One ternary panel per shown round: clean samples as dots, noisy ones as crosses, in the
    colour of their true class."""
    true, given = np.asarray(doc["true"]), np.asarray(doc["given"])
    noisy = true != given
    acc = doc["train_acc"]
    for ax, r in zip(axes, shown):
        simplex_axes(ax)
        x, y = ternary(doc["outputs"][r])
        for k in range(3):
            m = (true == k) & ~noisy
            ax.scatter(x[m], y[m], s=14, color=CLASS_COLORS[k], alpha=0.55, lw=0,
                       zorder=2)
            m = (true == k) & noisy
            ax.scatter(x[m], y[m], s=28, marker="X", color=CLASS_COLORS[k],
                       edgecolor="black", lw=0.5, zorder=3)
        ax.set_title(rf"round $r={r}$" + (" (teacher)" if r == "0" else "")
                     + f": train acc {acc[int(r)]:.3f}")


def _shrink_panel(ax, doc) -> None:
    """The signal kept per eigenspace and round: closed form (lines), exact outputs without
    jitter (circles) and with it (crosses)."""
    from matplotlib.lines import Line2D

    sh = doc["shrink"]
    rr = np.asarray(sh["rounds"])
    measured = sh["exact_measured"]
    jittered = sh.get("exact_measured_jittered", {})
    for name in measured:
        ax.semilogy(rr, sh["closed_form"][name], color=LEVEL_COLORS[name], lw=1.6,
                    label=rf"{_LEVEL_NAMES[name]}$^{{r+1}}$ ($\mu=${doc['mu'][name]:.3g})")
    for name, vals in measured.items():
        ax.semilogy(rr, _nan(vals), ls="none", marker="o", mfc="none", ms=5, mew=1.1,
                    color=LEVEL_COLORS[name])
    for name, vals in jittered.items():
        ax.semilogy(rr, _nan(vals), ls="none", marker="x", ms=3.5, mew=0.9, alpha=0.75,
                    color=LEVEL_COLORS[name])
    handles = ax.get_legend_handles_labels()[0]
    handles += [Line2D([], [], ls="none", marker="o", mfc="none", mew=1.1, color="#555555",
                       label="exact outputs, no jitter")]
    if jittered:
        handles.append(Line2D([], [], ls="none", marker="x", mew=0.9, color="#555555",
                              label=rf"exact outputs, jitter $\varepsilon={doc['config']['eps']}$"))
    ax.set_xlabel("round $r$")
    ax.set_ylabel("label signal kept (fraction)")
    ax.set_title(r"shrink per eigenspace $j$: $a_j^{r+1}$")
    ax.legend(handles=handles, loc="lower left", fontsize=7.8, handlelength=1.6,
              borderaxespad=0.3)
    lo = np.nanmin([np.nanmin(_nan(v)) for v in list(measured.values())
                    + list(jittered.values())] + [min(sh["closed_form"][n][-1]
                                                      for n in measured)])
    ax.set_ylim(lo / 3e3, 3.0)


def _sample_handles() -> list:
    """Legend entries of the simplex panels: true classes, clean and noisy samples, 1/K."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="none", marker="o", color=CLASS_COLORS[k], alpha=0.7,
                      label=f"true class {k}") for k in range(3)]
    handles += [Line2D([], [], ls="none", marker="o", color="#777777", label="clean sample"),
                Line2D([], [], ls="none", marker="X", color="#777777", mec="black",
                       label="noisy sample (given ≠ true)"),
                Line2D([], [], ls="none", marker="+", color="#444444", ms=8,
                       label="uniform 1/K")]
    return handles


def _label_averaging_caption(doc) -> str:
    cfg, sh = doc["config"], doc["shrink"]
    missing = [n for n in sh["closed_form"] if n not in sh["exact_measured"]]
    return (
        "Noisy instances leave the corner of their given label and join their true class "
        r"(instance directions shrink like $a_3^{r+1}$),"
        "\n"
        r"each class collapses to one point, and the classes drift towards $1/K$ at the "
        r"slower rate $a_2$; $a_j = \mu_j/(\mu_j + KN\lambda)$, "
        rf"$KN\lambda={doc['KNlam']:.3g}$."
        "\n"
        r"Right: signal kept $\|$part$_j(P_r-1/K)\|\,/\,\|$part$_j(\hat Y-1/K)\|$ per "
        r"eigenspace $j$ ($\hat Y$: one-hot given labels). Lines = closed form;"
        "\n"
        "circles = exact outputs on the pure block model (same labels, no jitter), which "
        "follow it;"
        "\n"
        r"crosses = the jittered $G$ of the simplex panels, whose instance part stops "
        "shrinking: the jitter mixes class signal into the within-class directions."
        + ("\n" + " and ".join(_LEVEL_NAMES[n] for n in missing)
           + r" not shown: every label is given $n$ times, so $\hat Y - 1/K$ has no "
           "global part." if missing else "")
        + "\n"
        rf"Jitter: symmetric Uniform$[-\varepsilon,\varepsilon]$, seed {cfg['seed']} "
        rf"(smallest eigenvalue of $G$ {doc['min_eigenvalue']:.3f}).   {stamp(doc)}")


# --------------------------------------------------------------------------------------------
# pll_vs_sd
# --------------------------------------------------------------------------------------------

_PLL_LINES = {
    "lower": dict(color=COLORS["vermillion"], ls="--", lw=2.0,
                  label="PLL student (1 round), ties to lower index"),
    "split": dict(color=COLORS["purple"], ls="none", marker="o", ms=4.5, markevery=3,
                  zorder=5, label="PLL student (1 round), ties split"),
}


def _near_coincidence(eta, sd, earlier, r) -> str:
    """" (= rounds a–b for η ≥ x)" (or "η ≤ x") where SD round r equals an earlier group's
    curve at every noise rate except one block at the low (or high) end: the two then look
    like one line."""
    n = eta.size
    for group in earlier:
        differ = np.flatnonzero(~np.isclose(sd[:, r], sd[:, group[0]], rtol=0.0, atol=1e-9))
        if differ.size == 0 or differ.size > n // 2 or np.any(np.diff(differ) != 1):
            continue
        name = f"round {group[0]}" if len(group) == 1 else f"rounds {round_ranges(group)}"
        if differ[0] <= 1 and differ[-1] + 1 < n:
            return f" (= {name} for η ≥ {eta[differ[-1] + 1]:g})"
        if differ[-1] >= n - 2 and differ[0] >= 1:
            return f" (= {name} for η ≤ {eta[differ[0] - 1]:g})"
    return ""


def plot_pll_vs_sd(results, png) -> None:
    """Training accuracy vs eta for SD rounds 0..R and the PLL student, one panel per lam.

    SD rounds whose curves are identical (within 1e-9 at every eta) are drawn once, with one
    legend entry "SD rounds a–b (identical)" in that panel's legend."""
    plt = pyplot()
    from matplotlib.lines import Line2D

    doc = load_results(results)
    cfg = doc["config"]
    panels = doc["panels"]
    R = int(cfg["rounds"])
    cmap = plt.get_cmap("viridis")
    b = doc["eta_boundary"]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(panels), figsize=(3.5 * len(panels) + 0.2, 4.5),
                                 sharey=True, squeeze=False)
        axes = axes[0]
        for ax, panel in zip(axes, panels):
            eta = np.array([row["eta"] for row in panel["rows"]])
            sd = np.array([row["sd"] for row in panel["rows"]], dtype=float)
            rules = list(panel["rows"][0]["pll"])
            handles = []
            groups = identical_groups(sd.T)
            for gi, group in enumerate(groups):
                r = group[0]
                label = (f"SD round {r}" + (" (teacher)" if r == 0 else "")
                         if len(group) == 1 else
                         f"SD rounds {round_ranges(group)} (identical)")
                label += _near_coincidence(eta, sd, groups[:gi], r)
                h, = ax.plot(eta, sd[:, r], color=cmap(r / max(R, 1) * 0.9),
                             lw=2.8 - 1.8 * r / max(R, 1), label=label)
                handles.append(h)
            for rule in rules:
                pll = np.array([row["pll"][rule] for row in panel["rows"]], dtype=float)
                ax.plot(eta, pll, **_PLL_LINES[rule])
            ax.axvline(b, color="#555555", ls=":", lw=1.2)
            ax.legend(handles=handles, loc="upper center", fontsize=8.5, handlelength=1.5,
                      bbox_to_anchor=(0.5, -0.2), frameon=False)
            ax.set_title(rf"$\lambda={lam_tex(panel['lam'])}$")
            ax.set_xlabel(r"noise rate $\eta$")
            ax.set_ylim(-0.03, 1.03)
            ax.set_xlim(-0.02, max(eta[-1], b) + 0.02)
        axes[0].set_ylabel("training accuracy vs true labels")
        fig.suptitle(
            rf"SD rounds 0–{R} vs one PLL round (exact, group-reduced): $K={cfg['K']}$, "
            rf"$n={cfg['n']}$, $c={cfg['c']}$, $d={cfg['d']}$, symmetric noise, exact counts",
            fontsize=10.5)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        shared = [Line2D([], [], **_PLL_LINES[rule]) for rule in _PLL_LINES
                  if rule in panels[0]["rows"][0]["pll"]]
        shared.append(Line2D([], [], color="#555555", ls=":", lw=1.2,
                             label=rf"$\eta=(K-1)/K={b:.3g}$: $\Delta=0$"))
        fig.legend(handles=shared, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 0.0),
                   frameon=False, fontsize=9)
        caption(fig, (
            "PLL student: one training on the teacher's top-2 labels (1/2 each, CE loss). "
            r"Symmetric noise ties a clean sample's $K-1$ wrong classes in the teacher's "
            "outputs."
            "\n"
            "Ties to the lower index make the PLL targets lopsided towards class 0 (the dip at "
            r"small $\eta$); split ties (1/2 on the top class, the other 1/2 shared"
            "\n"
            "by the tied classes) do not. SD rounds with identical accuracy at every "
            r"$\eta$ are drawn as one line and named together in the legend below"
            "\n"
            "their panel; a round that equals an earlier one except at a few noise rates "
            "says so there (thin line drawn over the thick one)."
            f"\n{stamp(doc)}"))
        save(fig, png)


# --------------------------------------------------------------------------------------------
# min_rounds
# --------------------------------------------------------------------------------------------

LAM_COLORS = [COLORS["blue"], COLORS["vermillion"], COLORS["green"], COLORS["purple"],
              COLORS["orange"], COLORS["sky"]]
# (line style, line width, marker, marker size, marker face) per lam: coinciding curves stay
# visible (solid under dashed under dotted; nested markers, largest first).
LAM_STYLES = [("-", 2.4, "o", 9.0, "none"), ("--", 1.7, "s", 6.0, "none"),
              (":", 1.7, "D", 3.6, "full"), ("-.", 1.4, "v", 3.0, "full")]


def _prefix_equal(x, a, b, min_frac: float = 0.05) -> float | None:
    """Largest x of the initial run (from the first point) where ``a`` and ``b`` agree (both
    defined); None if that run covers less than ``min_frac`` of the x range."""
    x, a, b = np.asarray(x, dtype=float), _nan(a), _nan(b)
    same = (a == b) & np.isfinite(a)
    k = int(np.argmin(same)) if not same.all() else same.size
    if k < 2 or x[k - 1] - x[0] < min_frac * (x[-1] - x[0]):
        return None
    return float(x[k - 1])


def _coincidences(panel, lams) -> list[str]:
    """Notes "λ=a, b: r* = v for η ≤ x (E), η ≤ y (closed form)" for the pairs of lam whose
    curves coincide over an initial range of eta (at least 5% of it)."""
    notes = []
    for i in range(len(lams)):
        for j in range(i + 1, len(lams)):
            parts, vals = [], set()
            for kind, xs, a, b in (
                    ("E", [r["eta"] for r in panel["rows"] if r["lam"] == lams[i]],
                     [r["r_star_exact"] for r in panel["rows"] if r["lam"] == lams[i]],
                     [r["r_star_exact"] for r in panel["rows"] if r["lam"] == lams[j]]),
                    ("closed form", panel["lines"][i]["eta"], panel["lines"][i]["r_star_closed"],
                     panel["lines"][j]["r_star_closed"])):
                end = _prefix_equal(xs, a, b)
                if end is not None:
                    vals |= {v for x, v in zip(xs, a) if x <= end}
                    parts.append(rf"$\eta \leq {end:.3g}$ ({kind})")
            if parts:
                what = rf"both $r^*={vals.pop()}$" if len(vals) == 1 else "equal $r^*$"
                notes.append(rf"$\lambda={lam_tex(lams[i])}$ and ${lam_tex(lams[j])}$: {what}"
                             "\nfor " + ", ".join(parts))
    return notes


def plot_min_rounds(results, png) -> None:
    """r* against eta: closed-form staircase (lines) and exact solver (markers), per noise;
    one line style and marker per lam, coinciding curves named in a note."""
    plt = pyplot()
    from matplotlib.lines import Line2D

    doc = load_results(results)
    cfg = doc["config"]
    R = int(cfg["max_rounds"])
    panels = doc["panels"]
    any_miss = False
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(panels), figsize=(4.9 * len(panels), 4.5),
                                 squeeze=False)
        axes = axes[0]
        for ax, panel in zip(axes, panels):
            any_miss |= _min_rounds_panel(ax, panel, R)
        handles, labels = axes[0].get_legend_handles_labels()
        order = [k for i in range(len(handles) // 2) for k in (2 * i, 2 * i + 1)]
        handles = [handles[k] for k in order]
        if any_miss:
            handles.append(Line2D([], [], ls="none", marker="^", color="#777777", mec="black",
                                  label=f"exact: not reached by round {R}"))
        fig.suptitle(r"Minimum rounds $r^*$ of self-distillation for 100% training-label "
                     r"correction: closed form vs exact solver", fontsize=11)
        fig.tight_layout(rect=(0, 0.1, 1, 1))
        fig.legend(handles=handles, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 0.0),
                   frameon=False, fontsize=9)
        caption(fig, (
            r"Closed form: smallest $r$ with $(a_2/a_3)^{r+1} > 1 + 1/\Delta$ (superclass: "
            r"$a_{cls}/a_{inst}$), $\Delta$ of the exact counts;"
            "\n"
            "exact: first round of the group-reduced solver of (E) with training accuracy 1, "
            f"rounds 0..{R} tried."
            "\n"
            r"One line style and marker per $\lambda$ (nested markers), so that equal "
            rf"values of different $\lambda$ stay visible.   {stamp(doc)}"))
        save(fig, png)


def _min_rounds_panel(ax, panel, R: int) -> bool:
    """One noise model's panel: r* against eta per lam, closed form (steps) and exact solver
    (markers), the impossible region shaded, coinciding curves noted. Returns whether some
    exact r* was not reached by round R although Delta > 0 (drawn as triangles at R)."""
    any_miss = False
    top = 0
    lams = [line["lam"] for line in panel["lines"]]
    for i, line in enumerate(panel["lines"]):
        col = LAM_COLORS[i % len(LAM_COLORS)]
        ls, lw, marker, ms, fill = LAM_STYLES[i % len(LAM_STYLES)]
        lam = line["lam"]
        y = _nan(line["r_star_closed"])
        top = max(top, np.nanmax(y) if np.any(np.isfinite(y)) else 0)
        ax.plot(line["eta"], y, color=col, lw=lw, ls=ls, drawstyle="steps-post",
                zorder=2 + i, label=rf"$\lambda={lam_tex(lam)}$: closed form")
        rows = [r for r in panel["rows"] if r["lam"] == lam]
        eta = np.array([r["eta"] for r in rows])
        ex = _nan([r["r_star_exact"] for r in rows])
        top = max(top, np.nanmax(ex) if np.any(np.isfinite(ex)) else 0)
        ax.plot(eta, ex, ls="none", marker=marker, ms=ms, mew=1.2, color=col,
                mfc=col if fill == "full" else "none", zorder=6 + i,
                label=rf"$\lambda={lam_tex(lam)}$: exact solver (E)")
        miss = np.array([r["r_star_exact"] is None and r["delta"] > 0 for r in rows])
        if miss.any():
            any_miss = True
            ax.plot(eta[miss], np.full(miss.sum(), R), ls="none", marker="^",
                    color=col, ms=7, mec="black", zorder=10)
    b = panel["eta_boundary"]
    frac = r"(K-1)/K" if panel["kind"] == "sym" else r"(m-1)/m"
    xmax = max(line["eta"][-1] for line in panel["lines"]) + 0.01
    ax.set_xlim(-0.01, xmax)
    ax.set_ylim(-1.0, top * 1.08 + 1)
    ax.axvline(b, color="#333333", ls="--", lw=1.2)
    ax.axvspan(b, xmax, color="#dddddd", alpha=0.6, lw=0, zorder=0)
    ax.text(0.5 * (b + xmax), 0.5 * top, rf"$\eta={frac}={b:.3g}$: 100% impossible",
            rotation=90, fontsize=8.5, va="center", ha="center", color="#333333")
    notes = _coincidences(panel, lams)
    if notes:
        ax.text(0.03, 0.75, "identical (drawn on top of each other):\n"
                + "\n".join(notes),
                transform=ax.transAxes, ha="left", va="top", fontsize=8,
                color="#222222", bbox=dict(fc="white", ec="#bbbbbb", pad=3,
                                           alpha=0.9))
    mdl = panel["model"]
    params = (rf"$K={panel['K']}$, $n={mdl['n']}$, $c={mdl['c']}$, $d={mdl['d']}$"
              + (rf", $e={mdl['e']}$, $S={mdl['S']}$, $m={mdl['m']}$"
                 if panel["kind"] == "superclass" else ""))
    ax.set_title(f"{panel['label']}\n{params}")
    ax.set_xlabel(r"noise rate $\eta$ (exact counts)")
    ax.set_ylabel(r"minimum round $r^*$ (0 = teacher)")
    return any_miss


# --------------------------------------------------------------------------------------------
# Phase diagrams (results: a JSON sidecar naming the CSVs of sdtheory.jobs.sweep)
# --------------------------------------------------------------------------------------------

PHASE_STYLE = {**STYLE, "axes.grid": False, "axes.spines.top": True, "axes.spines.right": True}
"""Common style without grid lines (they would cross the cells)."""


def _phase_csv(results, i: int = 0) -> Path:
    doc = load_results(results)
    return Path(results).parent / doc["csv"][i]["file"]


def _boundary(ax, eta_b: float, frac: str = "(K-1)/K", at: float = 0.5) -> None:
    """Dashed vertical line at the noise boundary, labelled at axes height ``at``."""
    ax.axvline(eta_b, color="black", ls="--", lw=1.1)
    ax.text(eta_b + 0.006, at, rf"$\eta={frac}$: $\Delta = 0$", rotation=90, va="center",
            ha="left", fontsize=8, color="black", transform=ax.get_xaxis_transform())


def plot_phase_eta_lam(results, png) -> None:
    """r* over eta x lam: :func:`sdtheory.plots.phase.plot_phase` (r* in bins 0, 1, 2, 3-4, 5-8,
    ...) with closed-form level lines at the bin edges, plus the boundary eta = (K-1)/K and a
    caption."""
    doc = load_results(results)
    cfg = doc["config"]
    with pyplot().rc_context(PHASE_STYLE):
        fig = plot_phase(_phase_csv(results), png, overlay_closed_form_levels=True)
        ax = fig.axes[0]
        _boundary(ax, doc["eta_boundary"])
        caption(fig, (
            r"Colour: exact $r^*$, in bins that double in width (0, 1, 2, 3–4, 5–8, ...). "
            r"Black lines: closed-form $r^*$ at the bin edges;"
            "\n"
            r"the line labelled $k$ separates $r^* < k$ (above) from $r^* \geq k$ (below). "
            f"White: no round up to {cfg['max_rounds']} is 100% correct"
            "\n"
            rf"(right of the dashed line $\Delta \leq 0$: impossible at any round).   "
            f"{stamp(doc)}"), y=0.0)
        save(fig, png)


def plot_phase_eta_gap(results, png) -> None:
    """r* over eta x (c - d): :func:`sdtheory.plots.phase.plot_phase` on the d sweep, the y axis
    relabelled as the class gap c - d (increasing upwards); the caption says why the gap
    range stops where it does (closed-form r* at larger gaps, from the results file)."""
    from matplotlib.ticker import FuncFormatter

    doc = load_results(results)
    cfg = doc["config"]
    c = float(cfg["c"])
    with pyplot().rc_context(PHASE_STYLE):
        fig = plot_phase(_phase_csv(results), png, overlay_closed_form_levels=True,
                         invert_y=True)
        ax = fig.axes[0]
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{c - v:.4g}"))
        ax.set_ylabel(rf"class gap $c - d$ ($d$ swept at $c = {c:g}$)")
        _boundary(ax, doc["eta_boundary"])
        ref = doc.get("r_star_closed_by_gap")
        why = ""
        if ref:
            gaps = ref["gap"]
            top = max(g for g in gaps if g <= c - min(_phase_y_values(results)) + 1e-12)
            i_top, i_max = gaps.index(top), len(gaps) - 1
            pairs = ", ".join(
                rf"{row[i_top]} $\to$ {row[i_max]} at $\eta={e:g}$"
                for e, row in zip(ref["eta"], ref["r_star"])
                if row[i_top] is not None and row[i_max] is not None)
            why = ("\n" + rf"Why $c - d \leq {top:g}$: above it $r^*$ hardly changes. "
                   rf"Closed-form $r^*$ at $c - d = {top:g}$ $\to$ ${gaps[i_max]:g}$:"
                   "\n" + pairs + ".")
        caption(fig, (
            r"$r^*$ grows without bound as $c - d \to 0$: then $\mu_2 = 1 - c + n(c-d) \to "
            r"\mu_3 = 1 - c$ and $a_2/a_3 \to 1$."
            + why +
            "\n"
            r"Colour: exact $r^*$ in bins; lines: closed-form $r^*$ at the bin edges "
            rf"(label $k$: $r^* \geq k$ below);"
            "\n"
            f"white: not reached by round {cfg['max_rounds']}.   {stamp(doc)}"), y=0.0)
        save(fig, png)


def _phase_y_values(results) -> np.ndarray:
    from sdtheory.results import read_phase_csv as read_csv

    return read_csv(_phase_csv(results)).y_values


def _cell_boundary(ax, xe, ye, inside) -> None:
    """Black line along the cell edges that separate ``inside`` cells from the others (a
    staircase: it never crosses a cell, and works for a single row or column)."""
    from matplotlib.collections import LineCollection

    inside = np.asarray(inside, dtype=bool)
    segs = []
    for iy, ix in np.argwhere(inside[:, 1:] != inside[:, :-1]):
        segs.append([(xe[ix + 1], ye[iy]), (xe[ix + 1], ye[iy + 1])])
    for iy, ix in np.argwhere(inside[1:, :] != inside[:-1, :]):
        segs.append([(xe[ix], ye[iy + 1]), (xe[ix + 1], ye[iy + 1])])
    if segs:
        ax.add_collection(LineCollection(segs, colors="black", linewidths=1.0, zorder=3))


def plot_phase_pll(results, png) -> None:
    """PLL gain over eta x lam, one panel per R (a CSV of :func:`sdtheory.jobs.sweep.phase_diagram`
    each).

    Gain exactly 0 is pure white (a diverging map whose middle colour is white, and the zero
    cells drawn white on top); a black line along the cell edges bounds the cells where PLL
    wins (gain > 0)."""
    plt = pyplot()
    from matplotlib import colors

    from sdtheory.results import read_phase_csv as read_csv

    doc = load_results(results)
    cfg = doc["config"]
    res = [read_csv(Path(results).parent / f["file"]) for f in doc["csv"]]
    finite = [np.abs(r.data[np.isfinite(r.data)]) for r in res]
    lim = max([float(f.max()) for f in finite if f.size] + [1e-6])
    cmap, norm = diverging_white(lim)
    cmap = cmap.with_extremes(bad="#bbbbbb")
    white = colors.ListedColormap([(1.0, 1.0, 1.0, 1.0)])
    with plt.rc_context(PHASE_STYLE):
        fig, axes = plt.subplots(1, len(res), figsize=(3.3 * len(res) + 1.0, 4.1),
                                 sharey=True, squeeze=False)
        axes = axes[0]
        for ax, r in zip(axes, res):
            xe, ye = cell_edges(r.x), cell_edges(r.y)
            mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(r.data), cmap=cmap, norm=norm,
                                 shading="flat")
            zero = np.ma.masked_where(~(r.data == 0.0), np.zeros(r.data.shape))
            ax.pcolormesh(xe, ye, zero, cmap=white, shading="flat")
            if r.y.log:
                ax.set_yscale("log")
            ax.set_xlim(xe[0], xe[-1])
            ax.set_ylim(ye[0], ye[-1])
            single_value_ticks(ax, r)
            _cell_boundary(ax, xe, ye, r.data > 0)
            _boundary(ax, doc["eta_boundary"], at=0.78)
            ax.set_title(f"PLL vs SD rounds 0–{r.max_rounds}", fontsize=10)
            ax.set_xlabel(r"noise rate $\eta$")
        axes[0].set_ylabel(r"ridge $\lambda$")
        cbar = fig.colorbar(mesh, ax=list(axes), fraction=0.035, pad=0.02)
        cbar.set_label(r"gain = acc(PLL) $-$ max$_{r \leq R}$ acc(SD round $r$)", fontsize=9)
        fig.suptitle(
            rf"Where one PLL round beats $R$ rounds of SD (exact, group-reduced): $K={cfg['K']}$,"
            rf" $n={cfg['n']}$, $c={cfg['c']}$, $d={cfg['d']}$,"
            "\n"
            r"symmetric noise, exact counts; $R = "
            + ", ".join(str(r.max_rounds) for r in res) + "$",
            fontsize=10.5, y=1.04)
        ties = ("PLL ties split: tied classes share the 1/2 (a clean sample's K−1 wrong classes "
                "are tied under symmetric noise)." if cfg.get("pll_ties") == "split" else
                r"PLL ties to the lowest class index; red at small $\eta$ is that rule, not "
                "PLL itself.")
        caption(fig, (
            "Blue: the PLL student (one training on the teacher's top-2 labels) is more "
            "accurate than every SD round 0–R;"
            "\n"
            "red: less accurate; white: exactly equal (gain 0); black line: edge of the cells "
            "where PLL wins. Training accuracy against the true labels."
            "\n"
            + ties + f"   {stamp(doc)}"), y=-0.02)
        save(fig, png)


def plot_probe_digits(results, png) -> None:
    """The probe figure (:func:`sdtheory.plots.probe.plot_probe_gain`) in ``png`` and the class
    correlations (:func:`sdtheory.plots.probe.plot_probe_correlation`) beside it, in
    NAME_correlation.png."""
    from sdtheory.plots.probe import plot_probe_correlation, plot_probe_gain

    doc = load_results(results)
    png = Path(png)
    plot_probe_gain(doc, png)
    plot_probe_correlation(doc, png.with_name(png.stem + "_correlation.png"))


def _seed_mean(entries, key, alpha=None):
    """Mean and std over seeds of the best accuracy over rounds 1..R (``key`` sd or relation),
    or of the PLL student's accuracy (``key`` pll), or of the teacher (``key`` teacher)."""
    vals = []
    for e in entries:
        if key == "pll":
            vals.append([s["pll"] for s in e["seeds"]])
        elif key == "teacher":
            vals.append([s["sd"][0] for s in e["seeds"]])
        elif key == "sd":
            vals.append([max(s["sd"][1:]) for s in e["seeds"]])
        else:
            vals.append([max(s["relation"][alpha][1:]) for s in e["seeds"]])
    v = np.asarray(vals, dtype=float)
    return v.mean(axis=1), v.std(axis=1)


def plot_relation_distillation(results, png) -> None:
    """Two panels: accuracy on the true training labels against eta, and against the relation
    view's snr at one eta (with the relation's purity)."""
    plt = pyplot()
    doc = load_results(results)
    cfg = doc["config"]
    alphas = [f"{a:g}" for a in cfg["alphas"]]
    series = [("teacher", None, "teacher (round 0)", COLORS["black"], ":", "."),
              ("sd", None, f"plain SD, best of rounds 1-{cfg['rounds']}", COLORS["blue"], "-",
               "o"),
              ("pll", None, "PLL student (1 round)", COLORS["vermillion"], "--", "s")]
    rel_colors = [COLORS["green"], COLORS["orange"], COLORS["purple"]]
    for i, a in enumerate(alphas):
        series.append(("relation", a, rf"relation-guided, $\alpha$ = {a}, best of rounds "
                       f"1-{cfg['rounds']}", rel_colors[i % 3], "-", "^"))
    with plt.rc_context(STYLE):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.0, 4.4))
        for ax, entries, xkey in ((ax1, doc["by_eta"], "eta"), (ax2, doc["by_snr"], "snr")):
            x = np.array([e[xkey] for e in entries])
            for key, a, label, col, ls, mk in series:
                m, sdv = _seed_mean(entries, key, a)
                ax.errorbar(x, m, yerr=sdv, color=col, ls=ls, marker=mk, ms=4, capsize=2,
                            label=label)
            ax.set_ylim(-0.02, 1.04)
            ax.set_ylabel("accuracy on the true training labels")
        pur = np.array([np.mean([s["purity"] for s in e["seeds"]]) for e in doc["by_snr"]])
        snr = np.array([e["snr"] for e in doc["by_snr"]])
        ax2.plot(snr, pur, color="0.45", ls="-.", lw=1.2,
                 label="relation purity (mass on the same true class)")
        ax2.set_xscale("log")
        ax1.set_xlabel(r"noise rate $\eta$ (sampled symmetric)")
        ax2.set_xlabel("signal-to-noise ratio of the relation view")
        ax1.set_title(f"against the noise rate (view snr = {cfg['relation_snr']:g})")
        ax2.set_title(rf"against the view's snr ($\eta$ = {cfg['snr_eta']:g})")
        ax2.legend(loc="lower right", fontsize=8)
        caption(fig, f"Gaussian mixture K = {cfg['K']}, n = {cfg['n']}, c = {cfg['c']}, "
                     f"d = {cfg['d']}, D = {cfg['dim']}, lam = {cfg['lam']:g}; exact solver; "
                     f"relation: k = {cfg['relation_k']} nearest neighbours of a "
                     f"{cfg['relation_dim']}-d label-free view, tau = {cfg['relation_tau']:g}; "
                     f"mean +- std over {len(cfg['seeds'])} seed(s).\n{stamp(doc)}",
                y=-0.02)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
        save(fig, png)


def plot_optimize_eta(results, png) -> None:
    """Best worst-margin and the optimal lam against eta, one line per round."""
    plt = pyplot()
    doc = load_results(results)
    cfg = doc["config"]
    rows = doc["rows"]
    eta = np.array([r["eta"] for r in rows])
    cmap = plt.get_cmap("viridis")
    nr = len(cfg["rounds"])
    with plt.rc_context(STYLE):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4.2))
        for i, rr in enumerate(cfg["rounds"]):
            col = cmap(0.9 * i / max(nr - 1, 1))
            m = np.array([r["optima"][i]["margin"] for r in rows])
            lam = np.array([r["optima"][i]["lam"] for r in rows])
            alpha = np.array([r["optima"][i]["label_weight"] for r in rows])
            label = f"round {rr}" + (" (teacher)" if rr == 0 else "")
            ax1.plot(eta, m, "o-", color=col, ms=3.5, label=label)
            ax2.plot(eta, lam, "o-", color=col, ms=3.5, label=label)
            if np.any(alpha > 1e-6):
                ax2.plot(eta[alpha > 1e-6], lam[alpha > 1e-6], "x", color=col, ms=7)
        ax1.axhline(0.0, color="0.3", lw=0.8)
        ax1.set_xlabel(r"noise rate $\eta$ (symmetric, exact counts)")
        ax1.set_ylabel("best worst-case training-label margin")
        ax1.set_title("largest margin by which every label is corrected\n(> 0: all corrected)")
        ax2.set_yscale("log")
        ax2.set_xlabel(r"noise rate $\eta$ (symmetric, exact counts)")
        ax2.set_ylabel(r"optimal ridge $\lambda^*$")
        ax2.set_title(r"the $\lambda$ that attains it (x: optimal label weight $\alpha^* > 0$)")
        ax1.legend(loc="upper right", fontsize=8)
        alphas = sorted({round(r2["label_weight"], 3) for r in rows for r2 in r["optima"]})
        caption(fig, f"Linearised student (L), two-level block model K = {cfg['K']}, "
                     f"n = {cfg['n']}, c = {cfg['c']}, d = {cfg['d']}; maximised over "
                     f"log lam in [1e-8, 1e3] and alpha in [0, 1] (L-BFGS-B, JAX gradients); "
                     f"optimal alpha values: {', '.join(f'{a:g}' for a in alphas)}.\n"
                     f"{stamp(doc)}", y=-0.02)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
        save(fig, png)


def plot_ridge_sd_proportional(results, png) -> None:
    """xi* (symmetric-log axis) and the gain over the teacher against lam: one colour per
    gamma, solid for the Gaussian (Marchenko-Pastur) design, dashed for the orthogonal one,
    markers with standard-error bars for finite samples, dotted the optimal ridge
    gamma sigma^2 / r^2 where xi* and the gain vanish."""
    plt = pyplot()
    doc = load_results(results)
    cfg = doc["config"]
    gammas = sorted({c["gamma"] for c in doc["curves"]})
    palette = [COLORS[k] for k in ("blue", "vermillion", "green", "purple", "orange")]
    color = {g: palette[i % len(palette)] for i, g in enumerate(gammas)}
    style = {"gaussian": "-", "orthogonal": "--"}
    marker = {"gaussian": "o", "orthogonal": "s"}
    with plt.rc_context(STYLE):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.0, 4.4))
        for c in doc["curves"]:
            label = rf"{c['design']}, $\gamma$ = {c['gamma']:g}"
            kw = {"color": color[c["gamma"]], "ls": style[c["design"]], "label": label}
            ax1.plot(c["lam"], c["xi_star"], **kw)
            ax2.plot(c["lam"], c["gain"], **kw)
        for smp in doc["samples"]:
            kw = {"color": color.get(smp["gamma"], "0.3"), "marker": marker[smp["design"]],
                  "ms": 5, "mfc": "white", "ls": "none", "capsize": 2}
            ax1.errorbar(smp["lam"], smp["mean"]["xi_star"], yerr=smp["se"]["xi_star"], **kw)
            ax2.errorbar(smp["lam"], smp["mean"]["gain"], yerr=smp["se"]["gain"], **kw)
        for g in gammas:
            for ax in (ax1, ax2):
                ax.axvline(g * cfg["sigma2"] / cfg["r2"], color=color[g], ls=":", lw=0.9)
        ax1.axhline(0.0, color="0.3", lw=0.8)
        ax1.set_yscale("symlog", linthresh=1.0)
        for ax in (ax1, ax2):
            ax.set_xscale("log")
            ax.set_xlabel(r"ridge $\lambda$ (teacher: $(X^\top X + n\lambda I)^{-1} X^\top y$)")
        ax1.set_ylabel(r"optimal teacher weight $\xi^*$ (symmetric log scale)")
        ax1.set_title(r"$\xi^* > 0$ below the optimal $\lambda$ (dotted), $< 0$ above it")
        ax2.set_yscale("log")
        top = max(max(c["gain"]) for c in doc["curves"])
        ax2.set_ylim(1e-4, 2.0 * top)
        ax2.set_ylabel(r"gain $R_T - R(\xi^*)$ over the teacher's excess risk")
        ax2.set_title(r"gain of the best mixed student (0 at the optimal $\lambda$)")
        ax1.legend(loc="upper right", fontsize=8)
        caption(fig, f"y = x.beta* + noise, isotropic x, ||beta*||^2 = r^2 = {cfg['r2']:g}, "
                     f"noise variance sigma^2 = {cfg['sigma2']:g}, p/n = gamma; the student "
                     "trains on (1 - xi) y + xi X beta_teacher (label weight alpha = 1 - xi)."
                     "\nLines: closed forms (docs/theory.md 14.1), solid Gaussian design "
                     "(Marchenko-Pastur law), dashed orthogonal design (X^T X / n = I); "
                     "dotted: lam = gamma sigma^2 / r^2, where xi* = 0 and the gain is 0."
                     "\nMarkers: finite samples trained by KernelRidgeSD, "
                     f"n = {cfg['sim_n']}, gamma = {cfg['sim_gamma']:g}, mean +- standard "
                     f"error over {len(cfg['sim_seeds'])} seeds (circles Gaussian, squares "
                     f"orthogonal). {stamp(doc)}", y=-0.02)
        fig.tight_layout(rect=(0, 0.09, 1, 1))
        save(fig, png)
