"""Which final clusters hold a structure: the verdict on each cluster's measures
(``cluster_quality``), the cluster table sorted as users choose classes (structures
first, best resolution first), its one-line-per-cluster text, and the pairs of final
clusters the merge test nearly joined.

The rule (docs/clustering.md, "Which clusters are structures"): a cluster is a
structure when its members match their average at least ``MIN_NULL_RATIO`` times better
than the same average with its phases randomised, and its half-set FSC stays above 0.143
beyond the lowest ``MIN_SHELL`` shells (a box-sized blob correlates on the first shells
whatever the boxes hold)."""
import math

STRUCTURE, JUNK_LIKE = "structure", "junk-like"
MIN_NULL_RATIO = 1.3
MIN_SHELL = 2.0


def verdict(q, box):
    """(verdict, reason) of one cluster's measures ``q`` (None: not measured) in a box of
    ``box`` voxels."""
    if q is None:
        return JUNK_LIKE, "too few members to measure an average"
    res, ratio = q["resolution_A"], q["null_ratio"]
    fsc_text = resolution_text(q)
    match = f"members match the average {ratio:.2f}x better than noise"
    shell = crossing_shell_of(q, box)
    if ratio < MIN_NULL_RATIO:
        return JUNK_LIKE, f"{fsc_text}; {match} (under {MIN_NULL_RATIO:g}x)"
    if res is None or shell < MIN_SHELL:
        return JUNK_LIKE, f"{fsc_text} (no detail beyond the lowest shells); {match}"
    return STRUCTURE, f"{fsc_text}; {match}"


def crossing_shell_of(q, box):
    """The Fourier shell of the resolution (box / resolution in voxels); 0 without one."""
    if q["resolution_A"] is None:
        return 0.0
    unit = q.get("voxel_size") or 1.0
    return box / (q["resolution_A"] / unit)


def resolution_text(q):
    unit = "Å" if q.get("voxel_size") else "voxels"
    if q["resolution_A"] is None:
        return "FSC under 0.143 from the first shell"
    if q["nyquist_limited"]:
        return f"FSC above 0.143 up to Nyquist: {q['resolution_A']:.3g} {unit} or better"
    return f"FSC 0.143 at {q['resolution_A']:.3g} {unit}"


def sort_key(row):
    """Structures first, then the best (smallest) resolution, unmeasured last."""
    res = row.get("resolution_A")
    return (row["verdict"] != STRUCTURE, math.inf if res is None else res, row["cluster"])


def cluster_table(quality, sizes, box, voxel_size):
    """The report's ``clusters``: one row per cluster (1-based ``cluster``), sorted by
    ``sort_key``. ``quality``: {0-based cluster: measures}; ``sizes``: members per cluster."""
    n = max(1, sum(sizes))
    rows = []
    for c, size in enumerate(sizes):
        if size == 0:
            continue
        q = quality.get(c)
        if q is not None:
            q = dict(q, voxel_size=voxel_size)
        v, reason = verdict(q, box)
        row = {"cluster": c + 1, "size": int(size), "share": round(size / n, 4),
               "verdict": v, "reason": reason}
        row.update(q or {"resolution_A": None, "nyquist_limited": False})
        row.pop("voxel_size", None)
        rows.append(row)
    return sorted(rows, key=sort_key)


def summary_lines(rows, unit="Å"):
    """One line per cluster, in table order, for the terminal."""
    out = []
    for r in rows:
        res = r.get("resolution_A")
        res_text = "  -  " if res is None else (("<=" if r.get("nyquist_limited") else "")
                                                 + f"{res:.0f}")
        out.append(f"  cluster {r['cluster']:>3}  {r['verdict']:<9}  {r['size']:>6} "
                   f"({100 * r['share']:4.1f}%)  resolution {res_text:>6} {unit}  {r['reason']}")
    return out


def near_pairs(records, threshold, evidence, margin=0.2):
    """The final pairs the merge test nearly joined: agreement within ``margin`` of the
    merge ``threshold``, or held-out z under twice ``evidence``; closest first."""
    near = [r for r in records or []
            if r["agreement"] >= threshold - margin or r["z"] < 2 * evidence]
    return sorted(near, key=lambda r: (-r["agreement"], r["z"]))
