"""Figures of ``sdtheory probe``, drawn from its JSON results file alone (no solver imported):

* :func:`plot_probe_gain`: the paper's layout, distillation gain (student minus teacher test
  accuracy, mean +- std over seeds) against the noise rate, series t = 1..R and PLL, one panel
  per noise type;
* :func:`plot_probe_correlation`: the class correlation matrix ordered by the dendrogram of the
  superclass clustering, with the dendrogram and the block statistics (c, d, e).
"""

from __future__ import annotations

import numpy as np

from sdtheory.plots.style import COLORS, STYLE, caption, pyplot, save

__all__ = ["plot_probe_gain", "plot_probe_correlation"]

_NOISE_TITLE = {"sym": "symmetric noise", "asym": "asymmetric noise",
                "pairflip": "pair-flip noise", "superclass": "superclass (class-conditional) noise"}
_SERIES_COLORS = [COLORS[c] for c in ("sky", "blue", "green", "orange", "purple", "yellow")]


def _source(doc) -> str:
    d = doc["data"]
    return (f"{d['source']} ({d['feature_map']} features, N = {d['N']}, test {d['M']}, "
            f"D = {d['D']}, K = {d['K']})")


def plot_probe_gain(doc: dict, png) -> None:
    """Distillation gain against eta, one panel per noise type (see the module docstring)."""
    plt = pyplot()
    cfg = doc["config"]
    kinds = list(doc["gains"])
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(kinds), figsize=(4.6 * len(kinds) + 0.6, 3.9),
                                 sharey=True, squeeze=False)
        for ax, kind in zip(axes[0], kinds):
            series = doc["gains"][kind]
            eta = np.asarray(series["eta"])
            labels = [k for k in series if k != "eta"]
            n = len(labels)
            width = 0.012 * (eta.max() - eta.min() if eta.size > 1 else 1.0)
            for i, label in enumerate(labels):
                mean, std = (100 * np.asarray(v) for v in series[label])
                pll = label == "pll"
                shift = (i - (n - 1) / 2) * width            # small offsets: error bars visible
                ax.errorbar(eta + shift, mean, yerr=std, capsize=2.5,
                            color=COLORS["vermillion"] if pll else _SERIES_COLORS[i % 6],
                            marker="s" if pll else "o", ms=4.5 if pll else 3.5,
                            ls="--" if pll else "-", lw=1.8 if pll else 1.3,
                            label="PLL student (1 round)" if pll else f"SD student {label}")
            ax.axhline(0.0, color="0.3", lw=0.8)
            ax.set_title(_NOISE_TITLE.get(kind, kind))
            ax.set_xlabel(r"noise rate $\eta$ (target)")
        axes[0][0].set_ylabel("distillation gain (test accuracy,\nstudent - teacher, % points)")
        handles, labs = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labs, loc="upper center", ncol=len(labs), frameon=False,
                   bbox_to_anchor=(0.5, 1.0))
        seeds = len(cfg["seeds"])
        engine = ("exact solver of (E) (training to convergence)" if cfg["engine"] == "closed"
                  else "SGD, the authors' protocol (200 epochs, lr 0.1 x 0.98/epoch, momentum "
                       "0.9, batch 128" + (", best TEST epoch" if cfg["select_on_test"]
                                            else ", last epoch") + ")")
        method = ""
        if cfg.get("method") == "relation":
            method = (f"; relation-guided students (targets alpha Y + (1 - alpha) R P, "
                      f"alpha = {cfg['label_weight']:g}, k = {cfg['relation_k']}, purity "
                      f"{doc['stats']['relation_purity']:.3f})")
        elif cfg.get("label_weight"):
            method = f"; label weight alpha = {cfg['label_weight']:g}"
        caption(fig, f"{_source(doc)}; lam = {cfg['lam']:g}{method}; {engine}.\n"
                     f"Mean +- std over {seeds} seed{'s' if seeds > 1 else ''} of the sampled "
                     f"label noise; series offset slightly in eta so that the bars stay "
                     f"visible. sdtheory {doc['version']}", y=-0.02)
        fig.tight_layout(rect=(0, 0.04, 1, 0.92))
        save(fig, png)


def plot_probe_correlation(doc: dict, png) -> None:
    """Class correlation heatmap ordered by the superclass dendrogram (see the module
    docstring)."""
    from scipy.cluster.hierarchy import dendrogram

    from sdtheory.featuredata import superclass_linkage

    plt = pyplot()
    M = np.asarray(doc["stats"]["correlation"], dtype=float)
    names = doc["data"]["class_names"]
    sup = np.asarray(doc["superclass_of"])
    link = superclass_linkage(M)
    cut = doc["config"]["superclass_cut"] * link[:, 2].max()
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(6.4, 7.0))
        ax_d = fig.add_axes((0.14, 0.78, 0.66, 0.15))
        ax_h = fig.add_axes((0.14, 0.16, 0.66, 0.6))
        ax_c = fig.add_axes((0.83, 0.16, 0.03, 0.6))
        dn = dendrogram(link, ax=ax_d, no_labels=True, color_threshold=cut,
                        above_threshold_color="0.5")
        ax_d.axhline(cut, color=COLORS["vermillion"], lw=1, ls="--")
        ax_d.set_ylabel("1 - corr.", fontsize=9)
        ax_d.set_xticks([])
        ax_d.grid(False)
        ax_d.spines[["top", "right", "bottom"]].set_visible(False)
        order = np.asarray(dn["leaves"])
        lim = max(abs(M.min()), abs(M.max()))
        im = ax_h.imshow(M[np.ix_(order, order)], cmap="RdBu_r", vmin=-lim, vmax=lim,
                         interpolation="nearest")
        K = len(order)
        ax_h.set_xticks(range(K), [names[k] for k in order], rotation=90 if K > 12 else 0)
        ax_h.set_yticks(range(K), [names[k] for k in order])
        ax_h.grid(False)
        # superclass boundaries along the dendrogram order
        s = sup[order]
        for b in np.flatnonzero(s[1:] != s[:-1]) + 0.5:
            ax_h.axhline(b, color="k", lw=1.2)
            ax_h.axvline(b, color="k", lw=1.2)
        ax_h.set_xlabel("class (dendrogram order)")
        ax_h.set_ylabel("class")
        fig.colorbar(im, cax=ax_c, label="mean cosine of centred features, class k vs class l")
        st = doc["stats"]

        def f(v):
            return "-" if v is None else f"{v:.3f}"

        ax_d.set_title(f"Class correlations of {doc['data']['source']} "
                       f"({doc['data']['feature_map']} features)\n"
                       f"{len(set(sup.tolist()))} superclasses at the cut "
                       f"{doc['config']['superclass_cut']:g} x max linkage (dashed)", fontsize=10)
        caption(fig, "Black lines: superclass boundaries. Block statistics of G = X X^T (mean "
                     "entry / mean squared norm):\n"
                     f"c = {f(st.get('c'))} within class, d = {f(st.get('d'))} within "
                     f"superclass, e = {f(st.get('e'))} across superclasses "
                     f"(docs/theory.md section 13).   sdtheory {doc['version']}", y=0.01)
        save(fig, png)
