"""``disca-engine predict``: classify new subtomograms with a trained ``cluster`` run."""
from ..contract import PRECISIONS


def add_parser(subparsers):
    p = subparsers.add_parser(
        "predict", help="label new subtomograms with a trained DISCA run",
        description="Features from the run's saved network (inference mode), then its saved PCA "
                    "and mixture give each subtomogram a class (same numbering as the run).")
    p.add_argument("--model", required=True, help="output folder of a finished 'cluster' run")
    p.add_argument("--input", required=True, help="particles STAR file with the new subtomograms")
    p.add_argument("--output", required=True, help="output folder (clusters.star, summary.json)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--overwrite", action="store_true", help="replace a predict output already in OUTPUT (the new "
                   "one is written beside it and swapped in when complete)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="default: the precision the run was trained in (reproduces its labels)")
    p.add_argument("--gpus", help="GPU ids, e.g. 0 (sets CUDA_VISIBLE_DEVICES)")
    p.add_argument("--threads", type=int, help="TensorFlow intra/inter-op threads")
    p.add_argument("--cache-dir", help="folder for the memory-mapped stack (default OUTPUT/cache, removed)")
    p.set_defaults(func=run)
    return p


def run(args):
    from ..clustering.predict import predict
    s = predict(args.model, args.input, args.output, batch_size=args.batch_size, threads=args.threads,
                gpus=args.gpus, precision=args.precision, cache_dir=args.cache_dir, overwrite=args.overwrite)
    counts = ", ".join(f"{k}: {v}" for k, v in s["counts"].items())
    print(f"{s['n_particles']} subtomograms -> K={s['k']} classes ({counts}) in {s['seconds_total']:.0f}s "
          f"-> {args.output}", flush=True)
    return 0
