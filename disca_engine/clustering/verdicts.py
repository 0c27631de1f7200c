"""Which final clusters hold a structure: the verdict on each cluster's measures
(``cluster_quality``), the cluster table sorted as users choose classes (structures
first, best resolution first), its one-line-per-cluster text, and the pairs of final
clusters the merge test nearly joined.

The rule (docs/clustering.md, "Which clusters are structures"), fixed on two simulated
tuning sets and checked on a third (ranges below: all three sets): a cluster is a structure when its members match their
average at least ``MIN_NULL_RATIO`` times better than the phase-randomised average, its
half-set averages agree (reliability at least ``MIN_RELIABILITY``: empty boxes averaged
0.08-0.16, structures 0.66-0.88), and its average is neither far denser than protein
(``signal_fraction`` under ``MAX_SIGNAL``: gold beads 0.93-1.04, structures 0.09-0.23) nor a
sheet (``flatness`` under ``MAX_FLATNESS``: membranes 0.71-0.74, structures 0.03-0.35). The
resolution alone does not tell them apart: gold beads and membranes average best of all."""
import math

STRUCTURE, JUNK_LIKE = "structure", "junk-like"
MIN_NULL_RATIO = 1.3
MIN_RELIABILITY = 0.4
MAX_SIGNAL = 0.5
MAX_FLATNESS = 0.5


def verdict(q):
    """(verdict, reason) of one cluster's measures ``q`` (None: not measured); the reason
    names the first test a junk-like cluster fails."""
    if q is None:
        return JUNK_LIKE, "too few members to measure an average"
    fsc_text = resolution_text(q)
    ratio = q["null_ratio"]
    match = f"members match the average {ratio:.2f}x better than noise"
    if ratio < MIN_NULL_RATIO:
        return JUNK_LIKE, f"{match} (under {MIN_NULL_RATIO:g}x); {fsc_text}"
    if q["reliability"] < MIN_RELIABILITY:
        return JUNK_LIKE, (f"its half-set averages disagree (reliability {q['reliability']:.2f}, "
                           f"under {MIN_RELIABILITY:g}); {fsc_text}")
    if q["signal_fraction"] >= MAX_SIGNAL:
        return JUNK_LIKE, (f"signal fraction {q['signal_fraction']:.2f} (over {MAX_SIGNAL:g}): far "
                           f"denser than protein (gold?); {fsc_text}")
    if q["flatness"] >= MAX_FLATNESS:
        return JUNK_LIKE, (f"the average is a sheet (flatness {q['flatness']:.2f}): membrane or "
                           f"edge; {fsc_text}")
    return STRUCTURE, f"{fsc_text}; {match}"


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


def cluster_table(quality, sizes, voxel_size):
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
        v, reason = verdict(q)
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
