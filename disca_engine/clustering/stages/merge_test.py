"""Stage 4: the merge test, which decides K. Two classes merge when there is no evidence
that they hold different structures, by either of two measures:

- **agreement** (``align.pairs.pair_ratios``): on each Fourier shell, the correlation of the
  two aligned class averages over what two averages of *one* structure would reach there
  (the geometric mean of their half-set reliabilities, Spearman-Brown). About 1 for one
  structure when the averages are good; at or above ``threshold`` the pair merges, unless
  the held-out evidence below shows a clear difference (``vetoed``). With
  few, noisy members (6-15 boxes at SNR 0.01) the reliabilities are poor and the ratio of
  one structure's classes fell to 0.46-0.65 on real ribosomes;
- **held-out evidence** (``align.evidence``): each member's score against its own class
  made without it and against the other class; ``z`` under ``evidence`` (the members do
  not prefer their own class beyond what chance and the classification's own bias give)
  merges the pair, however noisy the averages.

Pairs merge least evidence first, each class once per test; a few alignment rounds follow,
and the test runs again until nothing merges.
"""
import time

import numpy as np

from ..align.averages import class_references
from ..align.evidence import evidence_matrix, half_scores
from ..align.pairs import kept_after_merging, merge_pairs, merged_labels, pair_ratios
from ..align.rounds import rounds
from .state import Classes


def pair_tests(classes, settings):
    """(K, K) agreement ratios and (K, K, 3) held-out evidence (z, t, ratio) of ``classes``."""
    stack, grid = classes.stack, classes.grid
    ratio = pair_ratios(stack, classes.refs, *classes.halves, grid, settings.pose_shift,
                        settings.pose_top)
    ev = evidence_matrix(half_scores(stack, grid, classes.halves), classes.labels)
    return ratio, ev


def alike(ratio, ev, settings):
    """Which pairs hold one structure: their averages agree and their held-out members do
    not clearly prefer their own class (``vetoed``), or those members do not prefer it."""
    return (((ratio >= settings.threshold) & ~vetoed(ev, settings))
            | (ev[..., 0] < settings.evidence))


def vetoed(ev, settings):
    """Pairs whose members, held out, score against the other class at most ``veto_ratio``
    of against their own, with z >= ``veto_z``: a clear difference. Agreement alone then
    does not merge them. On the tuning half (422 pairs after the alignment rounds) it kept
    3 of the 9 different-structure pairs that the rule without it merged apart (ratios
    0.79-0.85, z 6.9-10.2) and no pair of one structure (docs/clustering-history.md)."""
    return (ev[..., 2] < settings.veto_ratio) & (ev[..., 0] >= settings.veto_z)


def mergeable(ratio, ev, settings):
    """Pairs (i, j, z) to merge, least evidence first, each class at most once."""
    z = ev[..., 0]
    similarity = np.where(alike(ratio, ev, settings), -z, -np.inf)
    np.fill_diagonal(similarity, -np.inf)
    return [(i, j, -v) for i, j, v in merge_pairs(similarity, -1e300)]


def merge(classes, settings, alignment, min_size, log):
    """``classes`` after merge tests (``settings.MergeTest``) and the rounds between them
    (``alignment``: their budget and disattenuation)."""
    stack, grid, history = classes.stack, classes.grid, classes.history
    budget = alignment.rounds
    while classes.k > 1 and len(history) < 3 * budget:
        t1 = time.time()
        ratio, ev = pair_tests(classes, settings)
        merges = mergeable(ratio, ev, settings)
        log(f"  merge test: {len(merges)} pair(s) merge (agreement >= {settings.threshold:g} "
            f"unless held-out ratio < {settings.veto_ratio:g} with z >= {settings.veto_z:g}, or "
            f"held-out z < {settings.evidence:g}); " + pair_summary(ratio, ev)
            + f" ({time.time() - t1:.1f}s)")
        history.append({"merge_test": True, "merges": merges, "pairs": pair_records(ratio, ev)})
        if not merges:
            break
        refs, (h1, h2) = classes.refs, classes.halves
        kept = kept_after_merging(merges, len(refs))
        fit = rounds(stack, refs[kept], grid, merged_labels(classes.labels, merges), min_size,
                     budget // 3 or 1, log, history, disattenuate=alignment.disattenuate,
                     halves=(h1[kept], h2[kept]))
        classes = Classes.of_fit(stack, grid, fit, history)
    return classes


def pair_records(ratio, ev):
    """Every pair's agreement and held-out evidence, for the report."""
    k = len(ratio)
    return [{"pair": [i + 1, j + 1], "agreement": round(float(ratio[i, j]), 4),
             "z": round(float(ev[i, j, 0]), 2), "held_out_ratio": round(float(ev[i, j, 2]), 4)}
            for i in range(k) for j in range(i + 1, k)]


def pair_summary(ratio, ev):
    """The closest pair by each measure."""
    if len(ratio) < 2:
        return "one class"
    iu = np.triu_indices(len(ratio), 1)
    a, b = int(np.argmax(ratio[iu])), int(np.argmin(ev[..., 0][iu]))
    return (f"highest agreement {ratio[iu][a]:.2f} (classes {iu[0][a] + 1}-{iu[1][a] + 1}), "
            f"lowest z {ev[..., 0][iu][b]:.1f} (classes {iu[0][b] + 1}-{iu[1][b] + 1})")


def final_pairs(classes, z, settings, log):
    """The evidence that every two final classes differ, in the log and the history (the
    relabel and junk split move members after the last merge test); returns the final
    classes, with their references when there are two or more."""
    if classes.k < 2:
        log("  final classes: one class; no pair to test")
        return classes
    t1 = time.time()
    refs, halves, rot, shift = class_references(classes.stack, classes.labels, z, classes.grid)
    final = Classes(classes.stack, classes.grid, classes.labels, refs, halves, classes.history,
                    rot, shift)
    ratio, ev = pair_tests(final, settings)
    records = pair_records(ratio, ev)
    classes.history.append({"final_pairs": records})
    log(f"  final classes: evidence that they differ, pair by pair ({time.time() - t1:.1f}s)")
    same = alike(ratio, ev, settings)
    for r in records:
        verdict = "alike" if same[r["pair"][0] - 1, r["pair"][1] - 1] else "different"
        log(f"    classes {r['pair'][0]}-{r['pair'][1]}: agreement {r['agreement']:.2f}, held-out "
            f"z {r['z']:.1f} (other/own score {r['held_out_ratio']:.2f}): {verdict}")
    return final
