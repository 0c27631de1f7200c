"""How this run found K, told with its own numbers: the default preset's stages (mask, seed
clusters, alignment rounds, merge tests, relabel, junk split) read from the classification
history of ``report.json``; the other presets' BIC over K. Each preset's report explains
only the steps that preset ran."""
from . import html as H


def classification_history(info):
    """The first iteration's classification history (auto), or None (paper, fast)."""
    for rec in info.get("iterations") or []:
        if rec.get("classification"):
            return rec["classification"]
    return None


def section(info):
    """HTML: how K was found in this run."""
    history = classification_history(info)
    if history is None:
        return _bic_text(info)
    return _auto_text(info, history)


def _bic_text(info):
    ks = (info.get("settings") or {}).get("k_range") or (info.get("resolved") or {}).get("k_range")
    return H.help_box(H.esc(
        f"This run ({info.get('preset', '?')} preset) fitted Gaussian mixtures to the network's "
        f"PCA features for each candidate K ({_ks(ks)}) and kept the K of lowest BIC, then "
        "iterated feature learning and clustering and returned the iteration with the lowest "
        f"DDBI: K = {info.get('k', '?')} at iteration {info.get('chosen_iteration', '?')}."))


def _ks(ks):
    if not ks:
        return "?"
    return ", ".join(map(str, ks)) if len(ks) <= 8 else f"{min(ks)}-{max(ks)}"


def _auto_text(info, history):
    merge = ((info.get("settings") or {}).get("classification") or {}).get("merge_test") or {}
    steps = [_mask_step(history), _seed_step(history)]
    steps += [_merge_step(h, merge, n) for n, h in enumerate(_merge_tests(history), 1)]
    steps += [s for s in (_relabel_step(history), _junk_step(history)) if s]
    rows = [(name, what) for name, what in steps if what]
    intro = H.help_box(H.esc(
        "The default preset finds K without BIC: over-split seed clusters of rotation-invariant "
        "descriptors, alignment rounds (every box to its best class average), then merge tests "
        f"until none merges. Two classes merge when their aligned averages agree (per-shell "
        f"agreement >= {merge.get('threshold', '?')}){_veto_text(merge)}, or when their "
        f"held-out members do not prefer their own class (held-out z < "
        f"{merge.get('evidence', '?')}). The network then learns the final labels. This run: "
        f"K = {info.get('k', '?')}."))
    return intro + H.table(["step", "this run"], rows)


def _veto_text(merge):
    if not merge.get("veto_ratio"):     # off, or a run made before the veto
        return ""
    return (f" unless those members clearly prefer their own class (other/own score < "
            f"{merge['veto_ratio']} with z >= {merge['veto_z']})")


def _merge_tests(history):
    return [h for h in history if h.get("merge_test")]


def _mask_step(history):
    m = next((h for h in history if h.get("mask")), None)
    if not m:
        return ("particle mask", "")
    size = f" ({m['diameter_A']:.0f} A)" if m.get("diameter_A") else ""
    return ("particle mask", f"diameter {m['diameter_voxels']:.1f} voxels{size}, boxes cropped "
                             f"to {m['crop']}^3")


def _seed_step(history):
    rounds = [h for h in history if "round" in h]
    if not rounds:
        return ("seed clusters", "")
    first = next((h for h in history if h.get("merge_test")), None)
    before = [h for h in rounds if first is None or history.index(h) < history.index(first)]
    return ("seed clusters and alignment", f"K = {rounds[0]['k']} seed clusters, "
                                           f"{len(before)} alignment rounds before the first "
                                           "merge test")


def _merge_step(h, merge, n):
    merges = h.get("merges") or []
    pairs = {tuple(p["pair"]): p for p in h.get("pairs") or []}
    k = _k_of(h)
    if not merges:
        best = max(pairs.values(), key=lambda p: p["agreement"], default=None)
        near = (f"; closest pair {best['pair'][0]}-{best['pair'][1]}: agreement "
                f"{best['agreement']:.2f}, held-out z {best['z']:.1f}") if best else ""
        return (f"merge test {n}", f"K = {k}: nothing merges{near}")
    told = []
    for i, j, _ in merges:
        p = pairs.get((i + 1, j + 1))
        if p is None:
            continue
        why = "held-out z" if p["z"] < merge.get("evidence", 0) else "agreement"
        told.append(f"{i + 1}+{j + 1} (agreement {p['agreement']:.2f}, z {p['z']:.1f}; by {why})")
    return (f"merge test {n}", f"K = {k} -> {k - len(merges)}: " + ", ".join(told))


def _k_of(h):
    pairs = h.get("pairs") or []
    return max((max(p["pair"]) for p in pairs), default=1)


def _relabel_step(history):
    r = next((h for h in history if h.get("relabel")), None)
    if not r:
        return None
    return ("relabel (two views)", f"moved {100 * r['changed']:.1f}% of the boxes in "
                                   f"{r['passes']} pass(es); K = {r['k']}")


def _junk_step(history):
    j = next((h for h in history if h.get("junk_split")), None)
    if not j:
        return None
    splits = j.get("splits") or []
    what = "no class split" if not splits else f"{len(splits)} class(es) split"
    return ("junk split", f"{what}; K = {j['k']}")
