"""The DISCA report: pictures a user needs to decide which clusters to keep.

``write_report(cluster_dir)`` reads a ``disca-engine cluster`` folder and writes
``<cluster_dir>/report/index.html`` (self-contained, PNGs inlined; an interactive embedding
to select subtomograms by lasso) plus the PNGs, the cached embedding of every iteration
(``embedding/iter_NNN.npz``) and of the descriptors (``embedding/explorer_descriptors.npz``), the decoded cluster centres
(``decoded/class_NNN.mrc``) and one label map per tomogram (``labelmaps/<tomo>_labels.mrc``).
See docs/report.md.
"""
import json
import os

import numpy as np

from .. import contract
from ..errors import EngineError
from ..io.atomic import atomic_path
from ..progress import Progress
from . import embedding, explorer, explorer_page, k_steps, montage, plots, reembed, verdict_table
from . import html as H
from .run import ClusterRun

MAX_INLINE_TOMOGRAMS = 12  # keeps index.html a few MB with many tomograms
STAGES = ("run plots", "embedding", "explorer", "decoder", "montages", "re-embedding", "html")


class _Stages:
    """One progress line per stage with elapsed time and ETA; silent when disabled."""

    def __init__(self, enabled):
        self.p = Progress("report", total=len(STAGES)) if enabled else None
        self.done = 0

    def next(self, name):
        self.done += 1
        if self.p:
            self.p.update(self.done, extra=name, force=True)

    def log(self, msg):
        if self.p:
            self.p.log(msg)


def _embedding(run, out, colors, points, seed, stages):
    emb = embedding.plot_embeddings(run, os.path.join(out, "embedding.png"), colors,
                                    max_points=points, seed=seed, progress=stages)
    if emb:
        emb["chosen"] = run.chosen_iteration
    return emb


def _add_warnings(sections, warnings, stages):
    """A Warnings section after the summary, and each warning in the log."""
    if warnings:
        sections.insert(1, ("Warnings", "".join(f'<p class="warn">{H.esc(w)}</p>' for w in warnings)))
        for w in warnings:
            stages.log("WARNING " + w)


def _run_level_plots(run, out, colors, truth, names, sections):
    """BIC, iterations and sizes plots (a section), and the confusion plot when the truth is
    known (its path, or None)."""
    bic = plots.plot_bic(run, os.path.join(out, "bic.png"))
    its = plots.plot_iterations(run, os.path.join(out, "iterations.png"))
    sizes = plots.plot_sizes(run, os.path.join(out, "sizes.png"), colors)
    sections.append(("How K was found, and the iteration", _run_plots(run.info, bic, its, sizes)))
    if truth is None:
        return None
    return plots.plot_confusion(run, os.path.join(out, "confusion.png"), truth, names)


def _decode(run, out, decoder, decoder_options, seed, progress, warnings):
    """(decoded centres, decoder info) when ``decoder``; a failure becomes a warning."""
    if not decoder:
        return {}, None
    from .decoder import train_and_decode
    try:
        return train_and_decode(run, out, progress=progress,
                                **{"seed": seed, **(decoder_options or {})})
    except EngineError as exc:
        warnings.append(f"decoder not run: {exc}")
        return {}, None


def _claim_report_folder(run_dir, out):
    """The run folder's report/ is the engine's: listed in its manifest before writing (so a
    later --overwrite replaces it), and never a folder of the user's of that name."""
    from ..io.manifest import add_written, owned_names
    if os.path.lexists(out) and contract.REPORT_DIR not in owned_names(run_dir):
        raise EngineError(f"{out} was not written by disca-engine: move it away, or give the "
                          "report another --output folder")
    add_written(run_dir, "cluster", [contract.REPORT_DIR])


def write_report(cluster_dir, tomograms=None, decoder=True, max_members=6, progress=True,
                 output=None, embedding_points=2000, decoder_options=None, seed=0,
                 name=None, input_label=None):
    """Write the report; returns the path of index.html.

    tomograms: {name: path} (or a list of ``NAME=PATH``/``PATH``) overriding
    ``_discaTomogramFile``; decoder: train the feature decoder (needs TensorFlow);
    max_members: member subtomograms shown per cluster; output: folder (default
    ``<cluster_dir>/report``); name, input_label: the run's name and a description of its
    input for the title (kept in ``title.json`` for later re-runs)."""
    run = ClusterRun(cluster_dir)
    if not run.classes:
        raise EngineError(f"{run.star_path} has no rows: nothing to report")
    out = os.path.abspath(output or os.path.join(run.dir, contract.REPORT_DIR))
    if output is None:
        _claim_report_folder(run.dir, out)
    os.makedirs(out, exist_ok=True)
    if isinstance(tomograms, (list, tuple)):
        tomograms = reembed.parse_tomogram_args(tomograms)
    stages = _Stages(progress)
    colors = plots.cluster_colors(run.k)
    sections = [("Summary", _summary(run, colors))]
    warnings = []

    truth, names = run.true_classes()
    conf = _run_level_plots(run, out, colors, truth, names, sections)
    stages.next("run plots")

    # embeddings
    emb = _embedding(run, out, colors, embedding_points, seed, stages)
    stages.next("embedding")
    sections.append(("Feature space", _embedding_section(emb)))
    exp = explorer.explorer_data(run, out, colors, embedding_points, seed, stages)
    stages.next("explorer")
    sections.append(("Explore and select subtomograms", explorer_page.section(exp)))

    if decoder and run.is_predict:
        decoder = False  # predict folders keep no features; the decoder belongs to the cluster run
        warnings.append("decoder skipped: this is a 'predict' folder without features.npy; the "
                        "decoded centres are in the report of the cluster run that made the model")
    decoded, dec_info = _decode(run, out, decoder, decoder_options, seed, progress, warnings)
    stages.next("decoder")

    # montages
    overview = montage.averages_overview(run, os.path.join(out, "averages.png"), colors, decoded)
    cl_pngs = {c: montage.cluster_montage(run, c, os.path.join(out, f"cluster_{c:03d}.png"),
                                          colors[c], decoded.get(c), max_members)
               for c in run.classes}
    stages.next("montages")
    sections.append(("Clusters", _cluster_section(run, overview, cl_pngs, colors, decoded,
                                                  dec_info, decoder, out)))
    fsc_png = verdict_table.plot_fsc(run, os.path.join(out, "fsc.png"), colors)
    if fsc_png or run.info.get("near_pairs"):
        sections.append(("Which clusters are structures", _verdict_section(run, fsc_png, cl_pngs,
                                                                           colors)))

    # re-embedding
    tomos = reembed.reembed(run, out, colors, tomograms, progress=stages)
    stages.next("re-embedding")
    sections.append(("Clusters in the tomograms", _reembed_section(tomos, out)))
    if conf:
        sections.append(("Ground truth", _truth_section(run, conf, truth, names)))
    _add_warnings(sections, warnings, stages)
    index = H.write_page(os.path.join(out, "index.html"), _title(run, out, name, input_label),
                         sections)
    stages.next("html")
    stages.log(f"report written: {index}")
    return index


def _title(run, out, name, input_label):
    """"<run name>: DISCA clustering of N subtomograms from <input>". Values not given are
    taken from the previous report's title.json, the input from report.json's ``input``."""
    path = os.path.join(out, "title.json")
    saved = {}
    if os.path.isfile(path):
        try:
            with open(path) as fh:
                saved = json.load(fh)
        except (OSError, ValueError):
            saved = {}
    name = name or saved.get("name")
    input_label = input_label or saved.get("input_label") or run.info.get("input") or run.dir
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        json.dump({"name": name, "input_label": input_label}, fh)
    what = "classification" if run.is_predict else "clustering"
    title = f"DISCA {what} of {len(run.labels)} subtomograms from {input_label}"
    return f"{name}: {title}" if name else title


def _summary(run, colors):
    info = run.info
    rows = [("folder", run.dir), ("subtomograms", len(run.labels)),
            ("clusters K", len(run.classes))]
    if run.is_predict:
        rows += [("classified with the model of", info.get("model", "?")),
                 ("classification time", f"{info.get('seconds_total', '?')} s")]
        return H.table(None, rows) + verdict_table.cluster_table(run, colors)
    rows += [("chosen iteration", f"{run.chosen_iteration} of {len(info.get('iterations', []))}"),
            ("DDBI of the result", _num(info.get("ddbi"))), ("preset", info.get("preset", "?")),
            ("box", f"{run.box_size} voxels" + (f", {run.voxel_size:.2f} Å/voxel" if run.voxel_size else "")),
            ("restarts", len(info.get("restarts", [])) or 1)]
    rows += rest_rows(info.get("rest"))
    rows += [("clustering time", f"{info.get('seconds_total', '?')} s"),
            ("engine version", info.get("engine_version", "?"))]
    return H.table(None, rows) + verdict_table.cluster_table(run, colors)


def rest_rows(rest):
    """Summary rows of a run whose classes were found on a subsample (``report.json``
    ``rest``): how the others were classified and what it cost."""
    if not rest:
        return []
    agree = ("" if rest.get("agreement") is None else
             f"; network and alignment agree on {100 * rest['agreement']:.1f}% of those aligned")
    how = (f"{rest['by_network']} by the network, {rest['by_alignment']} by alignment to the "
           f"class references" + (f" (network posterior under {rest['unsure']:g})"
                                  if rest["by"] == "network" else ""))
    seconds = rest.get("seconds", {})
    return [("classes found and learnt on", f"a random subsample of {rest['subsample']}"),
            (f"the other {rest['rest']}", how + agree),
            ("their classification time", f"network {seconds.get('network', '?')} s, "
                                          f"alignment {seconds.get('alignment', '?')} s")]


def _num(value):
    return f"{value:.4g}" if isinstance(value, (int, float)) else "?"


def _run_plots(info, bic, its, sizes):
    body = k_steps.section(info) + H.help_box(
        "Of the iterations, the one with the lowest DDBI (distortion-based Davies-Bouldin index: "
        "compact, well separated clusters give low values) is returned. A K that settles and a "
        "DDBI that falls then flattens indicate a converged run; a K that keeps jumping suggests "
        "running more iterations or restarts.")
    if bic:
        body += H.image(bic, "BIC against the number of clusters K for the chosen iteration (or the "
                        "last earlier iteration that swept K); the circle marks the K used.")
    if its:
        body += H.image(its, "K (blue steps) and DDBI (orange) per iteration; the dotted red line "
                        "marks the chosen iteration (lowest DDBI).")
    body += H.image(sizes, "Number of subtomograms per cluster, coloured as in every other figure.")
    return body


def _embedding_section(emb):
    if not emb:
        return "<p>No iterations/iter_NNN folders (a predict folder, or an old run): no embedding.</p>"
    sub = (f"a random subsample of {emb['points']} of {emb['total']} subtomograms (for speed)"
           if emb["points"] < emb["total"] else f"all {emb['total']} subtomograms")
    colouring = ("Earlier iterations are coloured by their best match (Hungarian, maximum overlap) "
                 "to the final clusters; grey: no final match.")
    frames = [(f"iteration {it}" + (" (chosen)" if it == emb["chosen"] else ""), png)
              for it, png, _ in emb["frames"]]
    start = next((i for i, (it, _, _) in enumerate(emb["frames"]) if it == emb["chosen"]), None)
    return H.help_box(
        "Each dot is a subtomogram placed by its (PCA-reduced) features. Good clusters form compact "
        "islands that separate more with every iteration; a diffuse cloud shared by several clusters "
        "is usually noise or structures the features cannot tell apart.") + H.image(
        emb["path"], f"{emb['method']} of the PCA features at iterations "
        f"{', '.join(map(str, emb['iterations']))} (first, middle, chosen), {sub}. {colouring}") + \
        "<h3>Every iteration</h3>" + H.image_slider(
        frames, f"{emb['method']} of every iteration ({len(frames)}), {sub}; move the slider or "
        f"click an iteration. {colouring} Embeddings are cached in <code>embedding/iter_NNN.npz</code> "
        f"(this run computed {emb['computed']}, reused {len(frames) - emb['computed']}).",
        "embedding-slider", start)


def _cluster_section(run, overview, pngs, colors, decoded, dec_info, decoder, out):
    body = H.help_box(
        "Averages are the mean of all members (no alignment): a structural cluster shows a "
        "distinct, centred density in all three views; noise clusters average to a faint blob or "
        "a flat grey box. Decoded centres are the decoder's picture of the cluster's mean feature: "
        "recognisable shapes for structural clusters, a small globule for noise (DISCA SI). Slices are "
        "central planes through the box; dark = dense as in the input data.")
    if dec_info:
        body += (f"<p>Decoder: trained on {dec_info['n_train']} of {dec_info['n_total']} subtomograms, "
                 f"{dec_info['epochs_run']} epochs in <b>{dec_info['seconds_train']:.1f} s</b> "
                 f"(+{dec_info['seconds_setup']:.1f} s setup), MSE {dec_info['loss_first']:.3f} -> "
                 f"{dec_info['loss_last']:.3f} (target variance {dec_info['variance_of_targets']:.3f}); "
                 f"caps for this N: {dec_info['max_steps']} steps, {dec_info['max_seconds']:.0f} s; "
                 f"stopped by {H.esc(dec_info.get('stopped_by', '?'))}. "
                 "Decoded volumes: <code>decoded/class_NNN.mrc</code>.</p>")
        loss_png = plots.plot_decoder_loss(dec_info, os.path.join(out, "decoder_loss.png"))
        if loss_png:
            body += H.image(loss_png, "Decoder training loss per epoch. A curve still falling at "
                            "the end means the decoded centres would sharpen with more training "
                            "(disca-engine report --decoder-seconds/--decoder-steps); the dotted "
                            "line is what predicting the mean box scores.")
    elif not decoder:
        body += "<p>Decoder disabled (--no-decoder).</p>"
    if overview:
        body += H.image(overview, "Central xy/xz/yz slices of every cluster average"
                        + (" and decoded centre" if decoded else "") + "; frames in cluster colours.")
    for c in verdict_table.order(run):
        if pngs.get(c):
            body += f'<h3 id="cluster{c}">{H.swatch(colors[c])} Cluster {c} ({run.sizes[c]})</h3>'
            body += H.image(pngs[c], f"Cluster {c}: average{', decoded centre' if c in decoded else ''} "
                            f"and {_members_caption(run, c)}; rows xy, xz, yz.")
    return body


def _verdict_section(run, fsc_png, pngs, colors):
    body = ""
    if fsc_png:
        body += H.image(fsc_png, "Half-set FSC of each cluster's aligned average (solid: "
                        "structure, dotted: junk-like); the grey line is 0.143, where the "
                        "resolution in the cluster table is read.")
    return body + verdict_table.near_pairs_section(run, pngs, colors)


def _members_caption(run, c):
    _, distances, space = run.ranked_members(c)
    if distances is None:
        return "the members with the highest posterior p (no features in this folder to rank by)"
    return (f"the members closest to and farthest from the cluster centre, d = Euclidean distance "
            f"to the members' mean in <code>{space}</code> (the space the mixture clustered; "
            f"median over the cluster {np.median(distances):.2f})")


def _reembed_section(tomos, out):
    if not tomos:
        return ("<p>clusters.star has no tomogram coordinates (_rlnCoordinateX/Y/Z with "
                "_rlnTomoName or _discaTomogramFile): nothing to re-embed.</p>")
    body = H.help_box(
        "Picks drawn on slabs through the planes crossing the most picks, as circles of the box "
        "radius in cluster colours. Structural clusters sit where the particles are (e.g. ribosomes "
        "in the cytosol); membranes, carbon edges and fiducials show up as clusters lining those "
        "features. The label maps (same shape as the tomogram, 0 = background, sphere of each pick "
        "= its cluster number, voxel size in the header) open in IMOD, ChimeraX or napari on top of "
        "the tomogram.")
    if len(tomos) > MAX_INLINE_TOMOGRAMS:
        body += (f"<p>{len(tomos)} tomograms: the first {MAX_INLINE_TOMOGRAMS} are shown inline, the "
                 "others are linked (keep the report folder together to open them).</p>")
    for i, t in enumerate(tomos):
        body += f"<h3>{H.esc(t['name'])} ({t['picks']} picks)</h3>"
        if t.get("warning"):
            body += f'<p class="warn">{H.esc(t["warning"])}</p>'
        if t.get("png") and i >= MAX_INLINE_TOMOGRAMS:
            rel = os.path.relpath(t["png"], out)
            body += f'<p><a href="{H.esc(rel)}">{H.esc(rel)}</a></p>'
        elif t.get("png"):
            body += H.image(t["png"], f"Tomogram <code>{H.esc(t['tomogram'])}</code>.")
        if t.get("labelmap"):
            body += (f"<p>Label map: <code>{H.esc(os.path.relpath(t['labelmap'], out))}</code></p>")
    return body


def _truth_section(run, conf, truth, names):
    m, cl, tc = plots.confusion(run.labels, truth)
    rows = []
    for i, c in enumerate(cl):
        j = int(np.argmax(m[i]))
        rows.append([c] + list(m[i]) + [names.get(tc[j], tc[j]), f"{m[i, j] / max(1, m[i].sum()):.2f}"])
    body = H.table(["cluster"] + [names.get(t, str(t)) for t in tc] + ["majority", "purity"], rows)
    try:
        from sklearn import metrics
        body += (f"<p>homogeneity {metrics.homogeneity_score(truth, run.labels):.3f}, completeness "
                 f"{metrics.completeness_score(truth, run.labels):.3f}, adjusted Rand index "
                 f"{metrics.adjusted_rand_score(truth, run.labels):.3f}</p>")
    except ImportError:
        pass
    return body + H.image(conf, "Counts of true classes (columns) in each cluster (rows), from the "
                          "simulator's _discaTrueClass.")
