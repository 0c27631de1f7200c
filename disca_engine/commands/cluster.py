"""``disca-engine cluster``: the DISCA loop on a particles STAR file."""
from ..contract import DEFAULT_PRESET, PRECISIONS, PRESETS


def add_parser(subparsers):
    p = subparsers.add_parser(
        "cluster", help="DISCA unsupervised clustering of subtomograms (K found automatically)",
        description="Deep iterative subtomogram clustering (DISCA). Preset values are defaults; "
                    "explicit flags override them. Writes clusters.star, report.json, the model "
                    "and class averages to OUTDIR.")
    p.add_argument("--input", required=True, help="particles STAR file (subtomograms)")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=PRESETS,
                   help="auto (default): classes found by descriptors, seeds, alignment, a half-set "
                        "merge test for K, relabel and junk split, then learnt by the DISCA "
                        "network (docs/clustering.md); fast: the "
                        "earlier CPU preset (BIC over 5,10,20); paper: as published (GPU)")
    p.add_argument("--k-range", help="candidate numbers of clusters: MIN:MAX or a list 5,10,20")
    p.add_argument("--max-iterations", type=int)
    p.add_argument("--pca-components", type=int, help="PCA size of the features (default: preset; the fast preset caps it at N/50)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--epochs-per-iteration", type=int)
    p.add_argument("--learning-rate", type=float, help="initial learning rate (decays x0.95 per iteration)")
    p.add_argument("--restarts", type=int, help="independent runs with seeds S, S+1, ...; lowest DDBI kept")
    p.add_argument("--seed", type=int)
    p.add_argument("--precision", choices=PRECISIONS)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in OUTDIR")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run already in OUTDIR: the new run is written beside it and swapped "
                        "in when it finishes; only files disca-engine wrote are removed")
    p.add_argument("--init-model", help="output folder of a finished run: start from its network")
    p.add_argument("--gpus", help="GPU ids to use, e.g. 0,1 (sets CUDA_VISIBLE_DEVICES)")
    p.add_argument("--threads", type=int, help="TensorFlow intra/inter-op threads")
    p.add_argument("--cache-dir", help="folder for the memory-mapped subtomogram stack "
                                       "(default OUTDIR/cache, removed at the end and on failure)")
    p.add_argument("--no-report", action="store_true",
                   help="skip the HTML report (make it later with: disca-engine report OUTDIR)")
    p.add_argument("--no-decoder", action="store_true",
                   help="report without the feature decoder (saves about a minute on a CPU)")
    p.add_argument("--no-relabel", action="store_true",
                   help="auto preset: leave out the relabel stage (the two-view relabelling; "
                        "docs/clustering.md)")
    p.add_argument("--no-junk-split", action="store_true",
                   help="auto preset: leave out the junk split stage (low-scoring groups that "
                        "match their class average little better than noise; docs/clustering.md)")
    p.add_argument("--subsample", type=int,
                   help="auto preset: above this many subtomograms the classes are found, and "
                        "learnt by the network, on a random subsample of this size (default "
                        "2000; 0: on all of them)")
    p.add_argument("--rest-by", choices=("network", "alignment"),
                   help="auto preset, above --subsample: how the other subtomograms are "
                        "classified (default network: the trained network, alignment to the "
                        "class references where it is unsure; alignment: all aligned)")
    p.add_argument("--name", help="the run's name, for the report's title")
    p.add_argument("--input-label", help="what is clustered, for the report's title "
                                         "(default: the input STAR path)")
    p.set_defaults(func=run)
    return p


def run(args):
    from ..clustering.run import run_cluster
    from ..errors import EngineError, os_error_line
    settings = {
        "k_range": args.k_range, "max_iterations": args.max_iterations,
        "pca_components": args.pca_components, "batch_size": args.batch_size,
        "epochs_per_iteration": args.epochs_per_iteration, "learning_rate": args.learning_rate,
        "restarts": args.restarts, "seed": args.seed, "precision": args.precision,
        "resume": args.resume or None, "overwrite": args.overwrite or None,
        "init_model": args.init_model, "gpus": args.gpus, "threads": args.threads,
        "cache_dir": args.cache_dir,
        "relabel": False if args.no_relabel else None,
        "junk_split": False if args.no_junk_split else None,
        "subsample": args.subsample, "rest_by": args.rest_by,
    }
    report = run_cluster(args.input, args.output, preset=args.preset, **settings)
    gt = report.get("ground_truth")
    extra = (f"; vs ground truth: homogeneity {gt['homogeneity']:.3f}, accuracy {100 * gt['accuracy']:.1f}%"
             if gt else "")
    ddbi = "undefined (one cluster)" if report["ddbi"] is None else f"{report['ddbi']:.4f}"
    print(f"K={report['k']} (iteration {report['chosen_iteration']}, DDBI {ddbi}), sizes "
          f"{report['cluster_sizes']}{extra}; {report['seconds_total']:.0f}s -> {args.output}", flush=True)
    print_cluster_table(report)
    if not args.no_report:
        from ..report import write_report
        try:
            html = write_report(args.output, decoder=not args.no_decoder, name=args.name,
                                input_label=args.input_label)
        except (EngineError, OSError) as exc:
            # the clustering itself is complete on disk; say so, and how to retry
            why = os_error_line(exc) if isinstance(exc, OSError) else exc
            raise EngineError(f"clustering finished in {args.output}, but the report failed: {why}; "
                              f"retry with: disca-engine report {args.output}")
        print(f"report: {html}", flush=True)
    return 0


def print_cluster_table(report):
    """The clusters, structures first then by resolution, one line each (report.json
    ``clusters``)."""
    from ..clustering.verdicts import STRUCTURE, summary_lines
    rows = report.get("clusters") or []
    if not rows:
        return
    n = sum(r["verdict"] == STRUCTURE for r in rows)
    unit = "Å" if report.get("voxel_size") else "voxels"
    print(f"clusters: {n} structure-like, {len(rows) - n} junk-like (half-set FSC at 0.143, null "
          "ratio, signal fraction, flatness; report.json 'clusters')", flush=True)
    for line in summary_lines(rows, unit):
        print(line, flush=True)
