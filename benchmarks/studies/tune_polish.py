"""Study the two-view relabelling (``clustering/stages/relabel.py``) on the TUNING half only.

    python benchmarks/studies/tune_alignment.py --structures 5 --seed 0 --save-labels s5_0.npz
    python benchmarks/studies/tune_polish.py --structures 5 --seed 0 --labels s5_0.npz

Re-simulates the same tuning cell, recomputes the references of the saved final labels,
scores every subtomogram against every reference, and prints K, homogeneity, completeness
and ARI of the labels before and after relabelling by linear discriminants on: the
descriptors alone, the scores alone, and both (one pass, and until stable). ``--models``
adds pass caps and ``ScaledDiscriminant`` (below: one covariance shape, a scale per class).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "..", "..")]  # benchmarks/, repository
from tuning_cell import add_cell_arguments, load_cell  # noqa: E402  (beside this script)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_cell_arguments(ap)
    ap.add_argument("--labels", required=True, help=".npz written by tune_alignment.py --save-labels")
    ap.add_argument("--work", default="tune-alignment-work")
    ap.add_argument("--junk", type=float, default=0.0, help="fraction of junk boxes (as simulated)")
    ap.add_argument("--models", default="lda", help="discriminants to compare, each model or "
                    "model:most passes (the first is used in the view study): lda,lda:3,scaled")
    ap.add_argument("--outer", type=int, default=1, help="rounds of references and relabelling")
    args = ap.parse_args()
    from sklearn.metrics import adjusted_rand_score, completeness_score, homogeneity_score
    from disca_engine import settings as S
    from disca_engine.clustering.align.averages import references_from_labels
    from disca_engine.clustering.align.scan import score_matrix
    from disca_engine.clustering.stages import alignment, relabel

    saved = np.load(args.labels)
    names, parts, truth = load_cell(args, args.work, args.junk)
    if not np.array_equal(truth, saved["truth"]):
        raise SystemExit(f"{args.labels} was not made from this cell (the truths differ)")
    request = S.resolve("auto", **json.loads(str(saved["settings"])))
    min_size = request.method.min_cluster_size
    labels, z = relabel.canonical(saved["labels"]), saved["z"]
    t0 = time.time()
    stack, grid = alignment.aligned_data(parts, request.method.classification.alignment,
                                         request.options.threads)
    refs, weight = references_from_labels(stack, labels, z, grid)
    scores = score_matrix(stack, refs, grid, weight)
    print(f"{names}: N {parts.n}, K {labels.max() + 1}; scores of all references in "
          f"{time.time() - t0:.0f} s; argmax agrees with the labels for "
          f"{100 * np.mean(scores.argmax(1) == labels):.1f}%", flush=True)

    def show(name, lab):
        print(f"  {name:32s} K {lab.max() + 1:2d}  homogeneity {homogeneity_score(truth, lab):.3f}  "
              f"completeness {completeness_score(truth, lab):.3f}  ARI {adjusted_rand_score(truth, lab):.3f}",
              flush=True)
    show("alignment classification", labels)
    show("argmax of the recomputed scores", np.unique(scores.argmax(1), return_inverse=True)[1])
    zero = np.zeros((parts.n, 0))
    for name, a, b, passes in [("descriptors, one pass", z, zero, 1),
                               ("descriptors, until stable", z, zero, 10),
                               ("scores, one pass", zero, scores, 1),
                               ("scores, until stable", zero, scores, 10),
                               ("both, one pass", z, scores, 1),
                               ("both, until stable", z, scores, 10)]:
        lab, p = relabel.two_view_labels(a, b, labels, 0, min_size, max_passes=passes)
        show(f"{name} ({p})", lab)
    for spec in args.models.split(",")[1:]:   # model or model:passes
        model, passes = (spec.split(":") + ["10"])[:2]
        make = {"lda": relabel.shrunk_lda, "scaled": ScaledDiscriminant}[model]
        lab, p = relabel.two_view_labels(z, scores, labels, 0, min_size, max_passes=int(passes),
                                         discriminant=make)
        show(f"both, {spec} ({p})", lab)
    for outer in range(2, args.outer + 1):  # references of the relabelled clusters, again
        refs, weight = references_from_labels(stack, lab, z, grid)
        lab, p = relabel.two_view_labels(z, score_matrix(stack, refs, grid, weight), lab, 0,
                                         min_size)
        show(f"both, until stable, x{outer} ({p})", lab)


class ScaledDiscriminant:
    """Gaussian classes sharing one covariance shape (Ledoit-Wolf, pooled within classes),
    each with its own scale: the mean squared Mahalanobis distance of its members over the
    dimension. A heterogeneous class (junk picks) is broad and keeps its far members; with
    one shared covariance they would join whichever tight class lies nearest."""

    def fit(self, x, y):
        from sklearn.covariance import LedoitWolf
        self.classes_ = np.unique(y)
        self.means_ = np.stack([x[y == c].mean(0) for c in self.classes_])
        index = np.searchsorted(self.classes_, y)
        cov = LedoitWolf().fit(x - self.means_[index]).covariance_
        self._inv = np.linalg.inv(cov)
        d2 = self._mahalanobis(x)[np.arange(len(x)), index]
        dim = x.shape[1]
        self.scales_ = np.array([max(d2[index == k].mean() / dim, 1e-3)
                                 for k in range(len(self.classes_))])
        self.log_priors_ = np.log(np.bincount(index) / len(x))
        return self

    def _mahalanobis(self, x):
        diff = x[:, None, :] - self.means_[None]
        return np.einsum("nki,ij,nkj->nk", diff, self._inv, diff)

    def predict_log_proba(self, x):
        dim = x.shape[1]
        ll = -0.5 * (self._mahalanobis(x) / self.scales_ + dim * np.log(self.scales_)) + self.log_priors_
        return ll - np.logaddexp.reduce(ll, axis=1, keepdims=True)


if __name__ == "__main__":
    main()
