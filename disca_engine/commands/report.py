"""``disca-engine report CLUSTER_DIR``: (re)generate the HTML report of a cluster run."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "report", help="HTML report of a cluster run: plots, embeddings, montages, decoder, "
                       "clusters re-embedded in the tomograms",
        description="Write CLUSTER_DIR/report/index.html (self-contained) with the PNGs, decoded "
                    "cluster centres (decoded/class_NNN.mrc) and tomogram label maps "
                    "(labelmaps/<tomo>_labels.mrc).")
    p.add_argument("cluster_dir", metavar="CLUSTER_DIR", help="output folder of 'disca-engine cluster'")
    p.add_argument("--tomograms", nargs="+", metavar="NAME=PATH",
                   help="tomogram files for re-embedding, as NAME=PATH (NAME = _rlnTomoName) or PATH "
                        "(named by its file stem); default: _discaTomogramFile of clusters.star")
    p.add_argument("--no-decoder", action="store_true",
                   help="skip training the feature decoder (no TensorFlow needed)")
    p.add_argument("--decoder-epochs", type=int, default=None, help="decoder epochs at most (default 200)")
    p.add_argument("--decoder-steps", type=int, default=None,
                   help="decoder gradient steps at most (default: 20 passes over the "
                        "training subtomograms, at least 400)")
    p.add_argument("--decoder-seconds", type=float, default=None,
                   help="stop decoder training after this many seconds (default: 0.15 s per "
                        "training subtomogram, 60-900 s)")
    p.add_argument("--decoder-samples", type=int, default=None,
                   help="train the decoder on at most this many subtomograms (default 4000)")
    p.add_argument("--max-members", type=int, default=6, help="members shown per cluster (default 6)")
    p.add_argument("--embedding-points", type=int, default=2000,
                   help="subsample for t-SNE/UMAP, the static pictures and the interactive "
                        "embedding (default 2000; the page stays usable at 10000)")
    p.add_argument("--output", help="report folder (default CLUSTER_DIR/report)")
    p.add_argument("--name", help="the run's name, shown in the title (kept for later re-runs)")
    p.add_argument("--input-label", help="what was clustered, shown in the title (default: the "
                                         "input STAR path in report.json)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)
    return p


def run(args):
    from ..errors import EngineError
    from ..report import write_report
    for name, value in (("--max-members", args.max_members), ("--embedding-points", args.embedding_points),
                        ("--decoder-epochs", args.decoder_epochs), ("--decoder-samples", args.decoder_samples),
                        ("--decoder-steps", args.decoder_steps)):
        if value is not None and value < 1:
            raise EngineError(f"{name} must be at least 1 (got {value})")
    opts = {"epochs": args.decoder_epochs, "max_steps": args.decoder_steps,
            "max_seconds": args.decoder_seconds,
            "max_samples": args.decoder_samples}
    index = write_report(args.cluster_dir, tomograms=args.tomograms, decoder=not args.no_decoder,
                         max_members=args.max_members, output=args.output,
                         embedding_points=args.embedding_points,
                         decoder_options={k: v for k, v in opts.items() if v is not None},
                         seed=args.seed, name=args.name, input_label=args.input_label)
    print(index)
