"""The default (`auto`) run's cost stage by stage, read from one measured `disca-engine cluster`
run (its log, captured under `/usr/bin/time -v`, and its report.json), and projected to a
larger N on the same machine.

What grows with N and what does not, as the code stands (``clustering/pipeline.py``):
- with N: loading into the memory-mapped cache, the rotation-invariant descriptors (of all
  N), the rest (network features and alignment of every subtomogram outside the subsample),
  and the outputs left over (class averages over all N, clusters.star, features.npy);
- fixed: everything on the subsample (seeds, alignment rounds, merge tests, relabel, junk
  split, the network's two iterations), the cluster verdicts (at most 300 members per
  cluster), the HTML report (t-SNE of at most 2,000 points, a decoder with capped time).
A projection assumes the same K and the same subsample, and that per-subtomogram rates stay
those measured (the stack streamed from its memory map; measured flat from 2,000 to 200,000
in ``scaling.md``).

Usage: python benchmarks/project_auto.py --log RUN.log --report RUN/report.json
           [--n 198715 200000] [--json OUT.json]
"""
import argparse
import json
import re

SECONDS = re.compile(r"\((\d+(?:\.\d+)?)s\)\s*$")


def log_seconds(lines):
    """Seconds of the logged stages: descriptors, the classification on the subsample (its
    rounds, merge tests, relabel, junk split, final pairs), the cluster verdicts; and the
    wall-clock and peak RSS of ``/usr/bin/time -v`` when present."""
    out = {"descriptors": 0.0, "classification": 0.0, "verdicts": 0.0}
    in_classes = False
    for line in lines:
        m = SECONDS.search(line)
        if line.startswith("rotation-invariant descriptors") and m:
            out["descriptors"] = float(m.group(1))
        elif line.startswith("alignment: "):
            in_classes = True
        elif line.startswith("iteration 1/"):
            in_classes = False
        elif line.startswith("cluster quality:"):
            out["verdicts"] = float(re.search(r", (\d+(?:\.\d+)?)s\)", line).group(1))
        if in_classes and m:
            out["classification"] += float(m.group(1))
        if "Elapsed (wall clock) time" in line:
            out["wall"] = clock(line.rsplit(" ", 1)[1])
        if "Maximum resident set size" in line:
            out["peak_rss_mb"] = int(line.rsplit(" ", 1)[1]) / 1024
    return out


def clock(text):
    parts = [float(p) for p in text.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


def stages(log, report):
    """[(stage, seconds, grows with N: 'all' | 'rest' | None)] of one run."""
    its = report["iterations"]
    net = sum(sum(r["seconds"].values()) for r in its)
    rest = report.get("rest") or {"seconds": {"network": 0.0, "alignment": 0.0}}
    known = (log["descriptors"] + log["classification"] + net + rest["seconds"]["network"]
             + rest["seconds"]["alignment"] + log["verdicts"])
    rows = [("rotation-invariant descriptors (all N)", log["descriptors"], "all"),
            ("classes on the subsample (alignment, merge tests, relabel, junk split)",
             log["classification"], None),
            (f"network, {len(its)} iterations on the subsample", net, None),
            ("rest: network features", rest["seconds"]["network"], "rest"),
            ("rest: alignment to the class references", rest["seconds"]["alignment"], "rest"),
            ("cluster verdicts (at most 300 members per cluster)", log["verdicts"], None),
            ("loading, averages and output files (the rest of the run)",
             report["seconds_total"] - known, "all")]
    if "wall" in log:
        rows.append(("HTML report and start-up", log["wall"] - report["seconds_total"], None))
    return rows


def project(rows, n, sub, n_to):
    """Seconds at ``n_to`` of the stages measured at ``n`` with a subsample of ``sub``."""
    scale = {"all": n_to / n, "rest": (n_to - sub) / max(n - sub, 1), None: 1.0}
    return [(name, s * scale[grows]) for name, s, grows in rows]


def fmt(seconds):
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.2f} h"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log", required=True)
    p.add_argument("--report", required=True)
    p.add_argument("--n", type=int, nargs="+", default=[198715])
    p.add_argument("--json")
    args = p.parse_args()
    with open(args.log) as fh:
        log = log_seconds(fh.read().splitlines())
    with open(args.report) as fh:
        report = json.load(fh)
    n = report["n_particles"]
    sub = (report.get("rest") or {}).get("subsample", n)
    rows = stages(log, report)
    print(f"| stage | N = {n:,} measured | " + " | ".join(f"N = {m:,} projected" for m in args.n)
          + " |")
    print("|---|---|" + "---|" * len(args.n))
    projected = [project(rows, n, sub, m) for m in args.n]
    for i, (name, s, _) in enumerate(rows):
        print(f"| {name} | {s:.0f} s | " + " | ".join(f"{p[i][1]:.0f} s" for p in projected) + " |")
    total = sum(s for _, s, _ in rows)
    print(f"| **total** | **{fmt(total)}** | "
          + " | ".join(f"**{fmt(sum(s for _, s in p))}**" for p in projected) + " |")
    if "peak_rss_mb" in log:
        print(f"\npeak RSS {log['peak_rss_mb']:.0f} MB at N = {n:,}; K = {report['k']}, "
              f"subsample {sub}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"n": n, "subsample": sub, "k": report["k"], "log": log,
                       "stages": [{"stage": a, "seconds": round(b, 1), "grows": c}
                                  for a, b, c in rows],
                       "projected": {str(m): [{"stage": a, "seconds": round(b, 1)} for a, b in p]
                                     for m, p in zip(args.n, projected)}}, fh, indent=1)


if __name__ == "__main__":
    main()
