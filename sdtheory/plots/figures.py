"""Figure functions: one per figure, each reading only its results file.

Every ``plot_NAME(results, png)`` opens the results file written by :mod:`sdtheory.figures`
(JSON with the full config and the package version; for the phase diagrams a JSON sidecar
naming the CSVs of :mod:`sdtheory.sweep`, drawn with :func:`sdtheory.plots.phase.plot_phase`
where one panel suffices), draws the figure in the common style
(:data:`~sdtheory.plots.style.STYLE`, Okabe-Ito colours), puts the parameters in the title and
caption, and writes the PNG through a temporary file. Nothing here solves anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sdtheory.plots.phase import cell_edges, plot_phase
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
    "STYLE",
    "COLORS",
    "load_results",
    "plot_approximation",
    "plot_label_averaging",
    "plot_pll_vs_sd",
    "plot_min_rounds",
    "plot_phase_eta_lam",
    "plot_phase_eta_gap",
    "plot_phase_pll",
]

# --------------------------------------------------------------------------------------------
# approximation
# --------------------------------------------------------------------------------------------

def plot_approximation(results, png) -> None:
    """Exact vs linearised: training accuracy per round, one panel per solver."""
    plt = pyplot()
    doc = load_results(results)
    cfg = doc["config"]
    titles = {"exact": "exact students, fixed point (E)",
              "linear": "linearised students, closed form (L)"}
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
        for ax, which in zip(axes, ("exact", "linear")):
            rows = doc["solvers"][which]
            r = [row["round"] for row in rows]
            for part, marker in (("clean", "o"), ("noisy", "s"), ("all", "D")):
                y = [row[f"{part}_acc" if part != "all" else "train_acc"] for row in rows]
                y = [np.nan if v is None else v for v in y]
                ax.plot(r, y, marker=marker, color=PART_COLORS[part],
                        label={"clean": "clean samples (given = true)",
                               "noisy": "noisy samples (given ≠ true)",
                               "all": "all samples"}[part])
            ax.set_title(titles[which])
            ax.set_xlabel("round $r$ (0 = teacher)")
            ax.set_xticks(r)
            ax.set_ylim(-0.03, 1.03)
        axes[0].set_ylabel("training accuracy vs true labels")
        axes[0].legend(loc="upper left", bbox_to_anchor=(0.0, 0.93))
        fig.suptitle(
            rf"Exact vs linearised self-distillation: $K={cfg['K']}$, $n={cfg['n']}$ "
            rf"($N={doc['N']}$), $c={cfg['c']}$, $d={cfg['d']}$, $\lambda={lam_tex(cfg['lam'])}$, "
            rf"sampled sym. noise $\eta={cfg['eta']}$ (realised {doc['realised_noise_rate']:.3f},"
            rf" $\Delta={doc['delta']:.3f}$)", fontsize=11)
        fig.tight_layout()
        gap = doc["max_abs_output_gap"]
        caption(fig, (
            rf"$G$ = two-level block model + symmetric Uniform$[-\varepsilon, \varepsilon]$ "
            rf"jitter, $\varepsilon={cfg['eps']}$ (smallest eigenvalue "
            rf"{doc['min_eigenvalue']:+.3f}; $\varepsilon \leq {doc['eps_psd_bound']:.4f}$ "
            rf"keeps $G$ PSD at $N={doc['N']}$)."
            "\n"
            rf"The requested $\varepsilon={cfg['eps_requested']}$ makes $G$ indefinite "
            rf"(smallest eigenvalue {doc['min_eigenvalue_requested_eps']:+.2f}: semicircle "
            rf"radius $2\varepsilon\sqrt{{N/3}} > \mu_3 = 1-c$); the problem behind (E) is then "
            "unbounded and the exact solver refuses it."
            "\n"
            rf"Largest output gap max$_i\,\|p^E_i - p^L_i\|_\infty$: {gap[0]:.3f} at $r=0$, "
            rf"{gap[-1]:.3f} at $r={len(gap) - 1}$.   {stamp(doc)}"))
        save(fig, png)


# --------------------------------------------------------------------------------------------
# label_averaging
# --------------------------------------------------------------------------------------------

_SQ3 = np.sqrt(3.0) / 2.0


def _ternary(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric map of K = 3 distributions: e0 -> (0, 0), e1 -> (1, 0), e2 -> (1/2, s3/2)."""
    P = np.asarray(P)
    return P[:, 1] + 0.5 * P[:, 2], _SQ3 * P[:, 2]


def _simplex_axes(ax) -> None:
    ax.plot([0, 1, 0.5, 0], [0, 0, _SQ3, 0], color="#444444", lw=1.0, zorder=1)
    ax.plot([1 / 2], [_SQ3 / 3], marker="+", color="#444444", ms=8, zorder=1)
    for k, (x, y, ha, va) in enumerate([(-0.03, -0.03, "right", "top"),
                                        (1.03, -0.03, "left", "top"),
                                        (0.5, _SQ3 + 0.03, "center", "bottom")]):
        ax.text(x, y, f"class {k}", ha=ha, va=va, color=CLASS_COLORS[k], fontsize=9,
                fontweight="bold")
    ax.set_xlim(-0.2, 1.2)
    ax.set_ylim(-0.12, _SQ3 + 0.12)
    ax.set_aspect("equal")
    ax.axis("off")


def plot_label_averaging(results, png) -> None:
    """Ternary plots of the outputs of every instance per round, and a_j^(r+1) per level."""
    plt = pyplot()
    from matplotlib.lines import Line2D

    doc = load_results(results)
    cfg = doc["config"]
    true, given = np.asarray(doc["true"]), np.asarray(doc["given"])
    noisy = true != given
    shown = list(doc["outputs"])
    acc = doc["train_acc"]
    with plt.rc_context(STYLE):
        ncol = 3
        nrow = int(np.ceil((len(shown) + 1) / ncol))
        fig, axes = plt.subplots(nrow, ncol, figsize=(4.1 * ncol, 3.9 * nrow))
        axes = axes.ravel()
        for ax, r in zip(axes, shown):
            _simplex_axes(ax)
            x, y = _ternary(doc["outputs"][r])
            for k in range(3):
                m = (true == k) & ~noisy
                ax.scatter(x[m], y[m], s=16, color=CLASS_COLORS[k], alpha=0.55, lw=0,
                           zorder=2)
                m = (true == k) & noisy
                ax.scatter(x[m], y[m], s=34, marker="X", color=CLASS_COLORS[k],
                           edgecolor="black", lw=0.5, zorder=3)
            ax.set_title(rf"round $r={r}$" + (" (teacher)" if r == "0" else "")
                         + f":  train acc {acc[int(r)]:.3f}")
        for ax in axes[len(shown):-1]:
            ax.axis("off")
        ax = axes[-1]
        sh = doc["shrink"]
        rr = np.asarray(sh["rounds"])
        names = {"global": r"global $a_1$", "class": r"class $a_2$",
                 "instance": r"instance $a_3$", "superclass": "superclass"}
        for name, vals in sh["closed_form"].items():
            ax.semilogy(rr, vals, color=LEVEL_COLORS[name],
                        label=rf"{names[name]}$^{{r+1}}$, $\mu=${doc['mu'][name]:.3g}")
        for name, vals in sh["exact_measured"].items():
            v = np.array([np.nan if x is None else x for x in vals])
            ax.semilogy(rr, v, ls="none", marker="o", mfc="none", ms=4.5,
                        color=LEVEL_COLORS[name], label=f"{name} part, exact outputs")
        ax.set_xlabel("round $r$")
        ax.set_ylabel(r"label signal kept along eigenspace $j$")
        ax.set_title(r"shrink $a_j^{r+1}$, $a_j = \mu_j/(\mu_j + KN\lambda)$")
        ax.legend(loc="lower left", fontsize=7.5)
        handles = [Line2D([], [], ls="none", marker="o", color=CLASS_COLORS[k], alpha=0.7,
                          label=f"true class {k}") for k in range(3)]
        handles += [Line2D([], [], ls="none", marker="o", color="#777777", label="clean sample"),
                     Line2D([], [], ls="none", marker="X", color="#777777", mec="black",
                            label="noisy sample (given ≠ true)"),
                     Line2D([], [], ls="none", marker="+", color="#444444", ms=8,
                            label="uniform 1/K")]
        fig.legend(handles=handles, loc="upper center", ncol=6, bbox_to_anchor=(0.5, 0.955),
                   frameon=False)
        fig.suptitle(
            rf"Label averaging: outputs of all $N={doc['N']}$ training instances on the simplex, "
            rf"exact solver (E); $K={cfg['K']}$, $n={cfg['n']}$, $c={cfg['c']}$, $d={cfg['d']}$, "
            rf"$\lambda={lam_tex(cfg['lam'])}$, sym. noise $\eta={cfg['eta']}$ (exact counts)",
            fontsize=11, y=0.995)
        fig.tight_layout(rect=(0, 0, 1, 0.93))
        caption(fig, (
            "Noisy instances leave the corner of their given label and join their true class "
            "(instance directions die at the rate $a_3$), each class collapses to one point, "
            "and the classes drift towards $1/K$ at the slower rate $a_2$."
            "\n"
            r"Right: closed form (lines); circles: $\|$part of $(P_r - 1/K)\| \,/\, \|$part of "
            r"$(\hat Y - 1/K)\|$ for the exact outputs (the global part of $\hat Y - 1/K$ is 0: "
            "balanced noise). The instance part levels off at the jitter, which mixes class "
            "signal into the within-class directions."
            "\n"
            rf"$G$ = two-level block model + symmetric jitter $\varepsilon={cfg['eps']}$ "
            rf"(separates the instances; smallest eigenvalue {doc['min_eigenvalue']:.3f}), "
            rf"seed {cfg['seed']}; $KN\lambda={doc['KNlam']:.3g}$.   {stamp(doc)}"))
        save(fig, png)


# --------------------------------------------------------------------------------------------
# pll_vs_sd
# --------------------------------------------------------------------------------------------

_PLL_LINES = {
    "lower": dict(color=COLORS["vermillion"], ls="--", lw=2.0,
                  label="PLL student (1 round), ties to lower index"),
    "split": dict(color=COLORS["purple"], ls="none", marker="o", ms=4.5, markevery=3,
                  zorder=5, label="PLL student (1 round), ties split"),
}


def plot_pll_vs_sd(results, png) -> None:
    """Training accuracy vs eta for SD rounds 0..R and the PLL student, one panel per lam."""
    plt = pyplot()
    doc = load_results(results)
    cfg = doc["config"]
    panels = doc["panels"]
    R = int(cfg["rounds"])
    cmap = plt.get_cmap("viridis")
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2), sharey=True,
                                 squeeze=False)
        axes = axes[0]
        for ax, panel in zip(axes, panels):
            eta = np.array([row["eta"] for row in panel["rows"]])
            sd = np.array([row["sd"] for row in panel["rows"]], dtype=float)
            rules = list(panel["rows"][0]["pll"])
            for r in range(R + 1):
                ax.plot(eta, sd[:, r], color=cmap(r / max(R, 1) * 0.9),
                        lw=2.6 - 1.6 * r / max(R, 1),
                        label=f"SD round {r}" + (" (teacher)" if r == 0 else ""))
            for rule in rules:
                pll = np.array([row["pll"][rule] for row in panel["rows"]], dtype=float)
                ax.plot(eta, pll, **_PLL_LINES[rule])
            ax.axvline(doc["eta_boundary"], color="#555555", ls=":", lw=1.2)
            ax.text(doc["eta_boundary"] - 0.01, 0.55, r"$\eta=(K-1)/K$", rotation=90,
                    ha="right", va="center", fontsize=8, color="#555555",
                    bbox=dict(fc="white", ec="none", pad=0.5))
            if np.all(sd == sd[:, :1]):
                ax.text(0.03, 0.05, f"rounds 0–{R} coincide", transform=ax.transAxes,
                        fontsize=8.5, color="#333333")
            ax.set_title(rf"$\lambda={lam_tex(panel['lam'])}$")
            ax.set_xlabel(r"noise rate $\eta$")
            ax.set_ylim(-0.03, 1.03)
        axes[0].set_ylabel("training accuracy vs true labels")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5),
                   frameon=False)
        fig.suptitle(
            rf"SD rounds vs one PLL round (exact, group-reduced): $K={cfg['K']}$, "
            rf"$n={cfg['n']}$, $c={cfg['c']}$, $d={cfg['d']}$, symmetric noise, exact counts",
            fontsize=11)
        fig.tight_layout()
        caption(fig, (
            "PLL student: one training on the teacher's top-2 labels (1/2 each, CE loss). "
            r"Symmetric noise ties a clean sample's $K-1$ wrong classes in the teacher's outputs."
            "\n"
            "Ties to the lower index make the PLL targets lopsided towards class 0 (the dip at "
            r"small $\eta$); split ties (1/2 on the top class, the other 1/2 shared by the tied "
            "classes) do not."
            f"\n{stamp(doc)}"))
        save(fig, png)


# --------------------------------------------------------------------------------------------
# min_rounds
# --------------------------------------------------------------------------------------------

LAM_COLORS = [COLORS["blue"], COLORS["vermillion"], COLORS["green"], COLORS["purple"],
              COLORS["orange"], COLORS["sky"]]


def _nan(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def plot_min_rounds(results, png) -> None:
    """r* against eta: closed-form staircase (lines) and exact solver (markers), per noise."""
    plt = pyplot()
    doc = load_results(results)
    cfg = doc["config"]
    R = int(cfg["max_rounds"])
    panels = doc["panels"]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 4.6),
                                 squeeze=False)
        axes = axes[0]
        for ax, panel in zip(axes, panels):
            top = 0
            for i, line in enumerate(panel["lines"]):
                col = LAM_COLORS[i % len(LAM_COLORS)]
                lam = line["lam"]
                y = _nan(line["r_star_closed"])
                top = max(top, np.nanmax(y) if np.any(np.isfinite(y)) else 0)
                ax.plot(line["eta"], y, color=col, lw=1.4, drawstyle="steps-post",
                        label=rf"$\lambda={lam_tex(lam)}$: closed form")
                rows = [r for r in panel["rows"] if r["lam"] == lam]
                eta = np.array([r["eta"] for r in rows])
                ex = _nan([r["r_star_exact"] for r in rows])
                top = max(top, np.nanmax(ex) if np.any(np.isfinite(ex)) else 0)
                ax.plot(eta, ex, ls="none", marker="o", mfc="none", mew=1.3, ms=5.5,
                        color=col, label=rf"$\lambda={lam_tex(lam)}$: exact solver (E)")
                miss = np.array([r["r_star_exact"] is None and r["delta"] > 0 for r in rows])
                if miss.any():
                    ax.plot(eta[miss], np.full(miss.sum(), R), ls="none", marker="^",
                            color=col, ms=6)
            b = panel["eta_boundary"]
            frac = r"(K-1)/K" if panel["kind"] == "sym" else r"(m-1)/m"
            xmax = max(line["eta"][-1] for line in panel["lines"]) + 0.01
            ax.set_xlim(-0.01, xmax)
            ax.set_ylim(-0.8, top * 1.08 + 1)
            ax.axvline(b, color="#333333", ls="--", lw=1.2)
            ax.axvspan(b, xmax, color="#dddddd", alpha=0.6, lw=0, zorder=0)
            ax.text(0.5 * (b + xmax), 0.5 * top, rf"$\eta={frac}={b:.3g}$: 100% impossible",
                    rotation=90, fontsize=8.5, va="center", ha="center", color="#333333")
            mdl = panel["model"]
            params = (rf"$K={panel['K']}$, $n={mdl['n']}$, $c={mdl['c']}$, $d={mdl['d']}$"
                      + (rf", $e={mdl['e']}$, $S={mdl['S']}$, $m={mdl['m']}$"
                         if panel["kind"] == "superclass" else ""))
            ax.set_title(f"{panel['label']}\n{params}")
            ax.set_xlabel(r"noise rate $\eta$ (exact counts)")
            ax.set_ylabel(r"minimum round $r^*$ (0 = teacher)")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5),
                   frameon=False)
        fig.suptitle(r"Minimum rounds $r^*$ of self-distillation for 100% training-label "
                     r"correction: closed form vs exact solver", fontsize=11)
        fig.tight_layout()
        caption(fig, (
            r"Closed form: smallest $r$ with $(a_2/a_3)^{r+1} > 1 + 1/\Delta$ (superclass: "
            r"$a_{cls}/a_{inst}$), $\Delta$ of the exact counts; exact: first round of the "
            r"group-reduced solver of (E) with training accuracy 1."
            "\n"
            rf"Rounds tried: 0..{R} (a triangle at {R}: not reached); no marker right of the "
            rf"dashed line: no round corrects every label.   {stamp(doc)}"))
        save(fig, png)


# --------------------------------------------------------------------------------------------
# Phase diagrams (results: a JSON sidecar naming the CSVs of sdtheory.phase)
# --------------------------------------------------------------------------------------------

PHASE_STYLE = {**STYLE, "axes.grid": False, "axes.spines.top": True, "axes.spines.right": True}
"""Common style without grid lines (they would cross the cells)."""


def _phase_csv(results, i: int = 0) -> Path:
    doc = load_results(results)
    return Path(results).parent / doc["csv"][i]["file"]


def _integer_colorbar(fig, R: int) -> None:
    """Integer ticks on the r* colour bar (plot_phase's bar is drawn with cell edges at
    half-integers)."""
    cax = fig.axes[-1]
    step = max(1, int(np.ceil(R / 6 / 5.0)) * 5) if R > 10 else 1
    cax.set_yticks(np.arange(0, R + 1, step))


def _boundary(ax, eta_b: float, frac: str = "(K-1)/K", at: float = 0.5) -> None:
    """Dashed vertical line at the noise boundary, labelled at axes height ``at``."""
    ax.axvline(eta_b, color="black", ls="--", lw=1.1)
    ax.text(eta_b + 0.006, at, rf"$\eta={frac}$: $\Delta = 0$", rotation=90, va="center",
            ha="left", fontsize=8, color="black", transform=ax.get_xaxis_transform())


def plot_phase_eta_lam(results, png) -> None:
    """r* over eta x lam: :func:`sdtheory.phase.plot_phase` with closed-form level lines, plus
    the boundary eta = (K-1)/K and a caption."""
    doc = load_results(results)
    cfg = doc["config"]
    with pyplot().rc_context(PHASE_STYLE):
        fig = plot_phase(_phase_csv(results), png, overlay_closed_form_levels=True)
        ax = fig.axes[0]
        _integer_colorbar(fig, int(cfg["max_rounds"]))
        _boundary(ax, doc["eta_boundary"])
        caption(fig, (
            r"Colour: exact $r^*$. Black lines: closed-form $r^*$; the line labelled $k$ "
            r"separates $r^* < k$ (above) from $r^* \geq k$ (below). White: no round up to "
            f"{cfg['max_rounds']} is 100% correct"
            "\n"
            rf"(right of the dashed line $\Delta \leq 0$: impossible at any round). "
            f"{stamp(doc)}"), y=0.0)
        save(fig, png)


def plot_phase_eta_gap(results, png) -> None:
    """r* over eta x (c - d): :func:`sdtheory.phase.plot_phase` on the d sweep, the y axis
    relabelled as the class gap c - d (increasing upwards)."""
    from matplotlib.ticker import FuncFormatter

    doc = load_results(results)
    cfg = doc["config"]
    c = float(cfg["c"])
    with pyplot().rc_context(PHASE_STYLE):
        fig = plot_phase(_phase_csv(results), png, overlay_closed_form_levels=True)
        ax = fig.axes[0]
        _integer_colorbar(fig, int(cfg["max_rounds"]))
        ax.invert_yaxis()
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{c - v:.4g}"))
        ax.set_ylabel(rf"class gap $c - d$ ($d$ swept at $c = {c:g}$)")
        _boundary(ax, doc["eta_boundary"])
        caption(fig, (
            r"$r^*$ grows without bound as $c - d \to 0$: then $\mu_2 = 1 - c + n(c-d) \to "
            r"\mu_3 = 1 - c$ and $a_2/a_3 \to 1$. Lines: closed-form $r^*$; white: not reached "
            f"by round {cfg['max_rounds']}."
            "\n"
            f"{stamp(doc)}"), y=0.0)
        save(fig, png)


def plot_phase_pll(results, png) -> None:
    """PLL gain over eta x lam, one panel per R (three CSVs of :func:`sdtheory.phase.sweep`)."""
    plt = pyplot()
    from matplotlib import colors

    from sdtheory.sweep.io import read_csv

    doc = load_results(results)
    cfg = doc["config"]
    res = [read_csv(Path(results).parent / f["file"]) for f in doc["csv"]]
    lim = max(float(np.nanmax(np.abs(r.data))) for r in res)
    lim = max(lim, 1e-6)
    norm = colors.TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim)
    cmap = plt.get_cmap("RdBu").with_extremes(bad="#bbbbbb")
    with plt.rc_context(PHASE_STYLE):
        fig, axes = plt.subplots(1, len(res), figsize=(4.6 * len(res) + 1.2, 4.4),
                                 sharey=True, squeeze=False)
        axes = axes[0]
        for ax, r in zip(axes, res):
            xe, ye = cell_edges(r.x), cell_edges(r.y)
            mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(r.data), cmap=cmap, norm=norm,
                                 shading="flat")
            X, Y = np.meshgrid(r.x_values, r.y_values)
            if np.nanmax(r.data) > 0 and np.nanmin(r.data) <= 0:
                ax.contour(X, Y, r.data, levels=[1e-9], colors="black", linewidths=0.9)
            if r.y.log:
                ax.set_yscale("log")
            ax.set_xlim(xe[0], xe[-1])
            ax.set_ylim(ye[0], ye[-1])
            _boundary(ax, doc["eta_boundary"], at=0.78)
            ax.set_title(f"PLL vs SD rounds 0–{r.max_rounds}  ($R={r.max_rounds}$)")
            ax.set_xlabel(r"noise rate $\eta$")
        axes[0].set_ylabel(r"ridge $\lambda$")
        cbar = fig.colorbar(mesh, ax=list(axes), fraction=0.03, pad=0.02)
        cbar.set_label(r"acc(PLL) $-$ max$_{r \leq R}$ acc(SD round $r$)")
        fig.suptitle(
            rf"Where one PLL round beats $R$ rounds of SD (exact, group-reduced): $K={cfg['K']}$,"
            rf" $n={cfg['n']}$, $c={cfg['c']}$, $d={cfg['d']}$, symmetric noise, exact counts",
            fontsize=11, y=1.02)
        caption(fig, (
            "Blue: the PLL student (one training on the teacher's top-2 labels) is more "
            "accurate than every SD round 0–R; red: less; white: equal; black line: gain = 0 "
            "boundary."
            "\n"
            "Training accuracy against the true labels. PLL ties: "
            + ("tied classes share the 1/2 (split): a clean sample's K-1 wrong classes are tied "
               "under symmetric noise." if cfg.get("pll_ties") == "split" else
               r"lowest class index; red at small $\eta$ is that rule (a clean sample's wrong "
               "classes are tied under symmetric noise), not PLL itself.")
            + f"   {stamp(doc)}"), y=0.0)
        save(fig, png)
