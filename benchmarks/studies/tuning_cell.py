"""One simulated cell of the TUNING half, shared by the studies (``tune_alignment.py``,
``tune_polish.py``, ``tune_junk_split.py``): the same arguments make the same data."""
import contextlib
import io
import os


def add_cell_arguments(ap):
    ap.add_argument("--structures", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--snr", type=float, default=0.1)
    ap.add_argument("--tilt", type=float, default=60)
    ap.add_argument("--n-per-class", type=int, default=40)


def load_cell(args, work, junk=0.0, half="tuning"):
    """(structure names, particle set, true class per subtomogram (1-based)) of the cell
    described by ``args``, simulated under ``work`` from the tuning half (``half="report"``
    only to measure a step already chosen: the same data as ``bench_accuracy.py``'s cell)."""
    from bench_accuracy import cell_tag   # benchmarks/
    from disca_engine import contract
    from disca_engine.clustering.dataset import load_particles
    from disca_engine.simulate import simulate_subtomograms
    from disca_engine.simulate.templates import structure_set

    names = structure_set(half, args.structures, args.seed)
    folder = os.path.join(work, cell_tag(half, args.structures, args.seed, args.snr, args.tilt,
                                         args.n_per_class, junk))
    extra = {"junk_fraction": junk} if junk else {}
    with contextlib.redirect_stdout(io.StringIO()):
        star = simulate_subtomograms(folder, classes=",".join(names), n_per_class=args.n_per_class,
                                     snr=args.snr, tilt=args.tilt, size=24, seed=args.seed, **extra)
    parts = load_particles(star, progress=False)
    return names, parts, parts.table.column(contract.TRUE_CLASS, int, star)
