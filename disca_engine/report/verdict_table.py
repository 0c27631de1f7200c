"""The report's cluster table with each cluster's verdict (report.json ``clusters``,
structures first, then by resolution), the FSC curves behind it, and the pairs of final
clusters the merge test nearly joined, side by side."""
import numpy as np

from . import html as H
from . import plots

HEADER = ["cluster", "colour", "verdict", "resolution", "size", "share", "null ratio",
          "reliability", "signal", "flatness", "mean posterior", "why"]


def rows_of(run):
    """report.json's ``clusters`` rows (already sorted), or None (predict folders, runs of
    an engine before issue 24)."""
    rows = run.info.get("clusters")
    return rows if rows else None


def order(run):
    """Cluster numbers in table order: the verdict table's, else by number."""
    rows = rows_of(run)
    if not rows:
        return list(run.classes)
    listed = [r["cluster"] for r in rows if r["cluster"] in run.sizes]
    return listed + [c for c in run.classes if c not in listed]


def resolution_cell(row, voxel_size):
    res = row.get("resolution_A")
    if res is None:
        return "none"
    unit = "Å" if voxel_size else "voxels"
    return ("≤ " if row.get("nyquist_limited") else "") + f"{res:.1f} {unit}"


def _num(value, fmt="{:.2f}"):
    return "-" if value is None else fmt.format(value)


def cluster_table(run, colors):
    """<h3>Clusters</h3> and the table: with verdicts when the run has them."""
    rows = rows_of(run)
    n = len(run.labels)
    if not rows:
        body = [(c, H.swatch(colors[c]), run.sizes[c], f"{100.0 * run.sizes[c] / n:.1f}%",
                 f"{np.mean(run.posteriors[run.members(c)]):.3f}") for c in run.classes]
        return "<h3>Clusters</h3>" + H.table(["cluster", "colour", "size", "share",
                                              "mean posterior"], body, raw_cols=(1,))
    body = []
    for r in rows:
        c = r["cluster"]
        if c not in run.sizes:
            continue
        verdict = f'<b>{H.esc(r["verdict"])}</b>' if r["verdict"] == "structure" else H.esc(r["verdict"])
        body.append((c, H.swatch(colors[c]), verdict, resolution_cell(r, run.voxel_size),
                     run.sizes[c], f"{100.0 * run.sizes[c] / n:.1f}%", _num(r.get("null_ratio")),
                     _num(r.get("reliability")), _num(r.get("signal_fraction")),
                     _num(r.get("flatness")),
                     f"{np.mean(run.posteriors[run.members(c)]):.3f}", r.get("reason", "")))
    n_struct = sum(r["verdict"] == "structure" for r in rows)
    return ("<h3>Clusters</h3>" + H.help_box(
        f"{n_struct} of {len(rows)} clusters look like structures. Sorted structures first, "
        "then by resolution: the half-set FSC of the cluster's aligned average at 0.143 "
        "(two half averages refined apart). The null ratio is how much better the members "
        "match their average than the same average with its Fourier phases randomised (about "
        "1: the boxes share no structure); the half-set reliability how well its two half "
        "averages agree; the signal fraction how much of its members' variance the average "
        "explains (gold beads: nearly all; protein in one subtomogram: well under half); the "
        "flatness whether the average is a sheet (membranes, edges: near 1). The mean "
        "posterior says how sure the mixture is of the assignment, not whether the cluster "
        "holds a structure: junk clusters often score near 1.") + H.table(HEADER, body, raw_cols=(1, 2)))


def plot_fsc(run, path, colors):
    """The half-set FSC curve of every measured cluster; None without curves."""
    rows = [r for r in rows_of(run) or [] if r.get("fsc")]
    if not rows:
        return None
    fig, ax = plots.plt.subplots(figsize=(6, 3.8))
    # the curves are of the measured cube (``cluster_quality.measured_view``), not the box
    box = (run.info.get("verdict_rule") or {}).get("measured_box") or run.box_size \
        or 2 * len(rows[0]["fsc"])
    period = box * (run.voxel_size or 1.0)     # shell k is the frequency k / period
    for r in rows:
        k = np.arange(1, len(r["fsc"]) + 1)
        ax.plot(k / period, r["fsc"], color=colors.get(r["cluster"], (0.5, 0.5, 0.5)),
                ls="-" if r["verdict"] == "structure" else ":", label=f"{r['cluster']}")
    ax.axhline(0.143, color="gray", lw=0.8)
    unit = "1/Å" if run.voxel_size else "1/voxel"
    ax.set(xlabel=f"spatial frequency ({unit})", ylabel="FSC", ylim=(-0.2, 1.02))
    ax.legend(title="cluster", fontsize=7, ncol=2)
    return plots.save(fig, path)


def near_pairs_section(run, pngs, colors):
    """Each pair the merge test nearly joined: both clusters' numbers in one table, their
    montages side by side. Empty without such pairs."""
    pairs = [p for p in run.info.get("near_pairs") or []
             if all(c in run.sizes for c in p["pair"])]
    if not pairs:
        return ""
    by_cluster = {r["cluster"]: r for r in rows_of(run) or []}
    body = "<h3>Clusters the merge test nearly joined</h3>" + H.help_box(
        "Pairs whose averages agree nearly as well as two averages of one structure would, or "
        "whose members prefer their own cluster only weakly (held-out z). They may hold one "
        "structure split in two, or two similar ones: compare them here before exporting.")
    for p in pairs:
        i, j = p["pair"]
        rows = []
        for c in (i, j):
            r = by_cluster.get(c, {})
            rows.append((c, H.swatch(colors[c]), H.esc(r.get("verdict", "?")),
                         resolution_cell(r, run.voxel_size) if r else "?", run.sizes[c],
                         _num(r.get("null_ratio"))))
        body += (f"<p>Clusters {i} and {j}: agreement {p['agreement']:.2f}, held-out z "
                 f"{p['z']:.1f} (other/own score {p.get('held_out_ratio', float('nan')):.2f})</p>")
        body += H.table(["cluster", "colour", "verdict", "resolution", "size", "null ratio"],
                        rows, raw_cols=(1,))
        pics = "".join(f'<div style="flex:1">{H.image(pngs.get(c), f"Cluster {c}")}</div>'
                       for c in (i, j) if pngs.get(c))
        body += f'<div class="pair" style="display:flex;gap:1em">{pics}</div>'
    return body
