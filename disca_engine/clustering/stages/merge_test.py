"""Stage 4: the merge test, which decides K. On each Fourier shell, the correlation of two
aligned class averages is compared with what two averages of *one* structure would reach
there (the geometric mean of their reliabilities, from half-set correlations by
Spearman-Brown); the shell-weighted ratio (``align.pairs.pair_ratios``) is about 1 for one
structure at any noise level. Pairs at or above the threshold merge, a few alignment rounds
follow, and the test runs again until nothing merges."""
import time

import numpy as np

from ..align.pairs import kept_after_merging, merge_pairs, merged_labels, pair_ratios
from ..align.rounds import rounds
from .state import Classes


def merge(classes, settings, alignment, min_size, log):
    """``classes`` after merge tests (``settings.MergeTest``) and the rounds between them
    (``alignment``: their budget and disattenuation)."""
    stack, grid, history = classes.stack, classes.grid, classes.history
    refs, (h1, h2), labels = classes.refs, classes.halves, classes.labels
    budget = alignment.rounds
    while len(refs) > 1 and len(history) < 3 * budget:
        t1 = time.time()
        ratio = pair_ratios(stack, refs, h1, h2, grid, settings.pose_shift, settings.pose_top)
        merges = merge_pairs(ratio, settings.threshold)
        np.fill_diagonal(ratio, 0)
        log(f"  merge test: {len(merges)} pair(s) at or above {settings.threshold:g} x the "
            f"half-set agreement (highest ratio {ratio.max():.2f}) ({time.time() - t1:.1f}s)")
        history.append({"merge_test": True, "merges": merges, "highest_ratio": float(ratio.max())})
        if not merges:
            break
        labels = merged_labels(labels, merges)
        kept = kept_after_merging(merges, len(refs))
        refs, h1, h2, _, labels = rounds(stack, refs[kept], grid, labels, min_size,
                                         budget // 3 or 1, log, history,
                                         disattenuate=alignment.disattenuate,
                                         halves=(h1[kept], h2[kept]))
    return Classes(stack, grid, labels, refs, (h1, h2), history)
