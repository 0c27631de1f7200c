"""Agreement of cluster labels with a ground truth (simulated data): homogeneity and
accuracy after the best one-to-one matching of clusters to classes (Hungarian)."""
import numpy as np
from scipy.optimize import linear_sum_assignment


def homogeneity(truth, labels):
    """sklearn's homogeneity: 1 when every cluster holds members of a single class."""
    from sklearn.metrics import homogeneity_score
    return float(homogeneity_score(np.asarray(truth), np.asarray(labels)))


def matched_accuracy(truth, labels):
    """Fraction of items whose cluster is matched to their class, with clusters and
    classes paired one-to-one to maximise that fraction (extra clusters count as wrong)."""
    truth, labels = np.asarray(truth), np.asarray(labels)
    _, t = np.unique(truth, return_inverse=True)
    _, c = np.unique(labels, return_inverse=True)
    table = np.zeros((c.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(table, (c, t), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum()) / len(truth)


def ground_truth_block(truth, labels):
    """The report's ``ground_truth`` entry."""
    return {"n_classes": int(np.unique(truth).size),
            "homogeneity": round(homogeneity(truth, labels), 4),
            "accuracy": round(matched_accuracy(truth, labels), 4)}
