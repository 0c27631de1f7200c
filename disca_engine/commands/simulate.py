"""``disca-engine simulate {subtomos,tomograms,classes}``: synthetic data with ground truth."""
import argparse
import contextlib
import os

from ..io.manifest import remove, swap_in


def _common(p):
    p.add_argument("--classes", default="default",
                   help="a number (first N of the default set), a set name (default, similar, "
                        "different, all), or comma-separated class names and/or paths of your "
                        "own .mrc/.map maps or .pdb/.cif models; see 'simulate classes'")
    p.add_argument("--class-set", choices=("default", "similar", "different", "all", "similar_tuning", "similar_report"), default=None,
                   help="a named class set (same as --classes NAME)")
    p.add_argument("--snr", type=float, required=False, help="signal-to-noise ratio (variance ratio)")
    p.add_argument("--tilt", type=float, default=60.0,
                   help="maximum tilt angle in degrees of a +-tilt series about y "
                        "(90 = no missing wedge)")
    p.add_argument("--voxel-A", dest="voxel_A", type=float, default=14.0,
                   help="voxel size in A (>= 7)")
    p.add_argument("--defocus-um", type=float, default=5.0, help="underfocus in um")
    p.add_argument("--defocus-spread-um", type=float, default=0.0,
                   help="underfocus uniform in defocus +- spread, per subtomogram / per tomogram")
    p.add_argument("--seed", type=int, default=0, help="random seed")


# Defaults of 'simulate tiltseries' and of the wbp tomograms: the values of the Python API
# (disca_engine.simulate.tiltsubtomos / tiltseries), written out so that building the parser
# does not import the simulator; tests/engine/test_tiltseries.py checks they agree.
TILTSERIES_DEFAULTS = {"snr": 0.03, "tilt_step": 3.0, "dose_per_tilt": 3.0, "defocus_um": "2.5,5",
                       "neighbours": "0,3", "membrane_fraction": 0.2, "gold_fraction": 0.02}


def add_parser(subparsers):
    d = TILTSERIES_DEFAULTS
    p = subparsers.add_parser("simulate", help="simulate subtomograms or tomograms with ground truth",
                              description="Realistic synthetic cryo-ET data (CTF, missing wedge, "
                                          "wedge-filtered noise) from real complexes and phantoms.")
    sub = p.add_subparsers(dest="what", metavar="WHAT")
    sub.required = True

    s = sub.add_parser("subtomos", help="subtomograms + particles.star with true classes",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _outdir_argument(s)
    _common(s)
    s.set_defaults(snr=0.1)
    s.add_argument("--n-per-class", type=int, default=40, help="subtomograms per class")
    s.add_argument("--size", type=int, default=24, help="box size in voxels")
    s.add_argument("--max-shift", type=float, default=2.0,
                   help="largest random shift of the particle centre per axis, voxels")
    s.add_argument("--snr-mode", choices=("particle", "dataset"), default="particle",
                   help="'particle': every subtomogram has the SNR; 'dataset': one noise level "
                        "for all (SNR of the mean signal variance)")
    s.add_argument("--junk-fraction", type=float, default=0.0,
                   help="fraction of junk boxes (empty, gold bead, membrane patch in turn; class "
                        "'junk'), at most 0.5")
    s.add_argument("--stack", action="store_true",
                   help="write one particles.mrcs stack instead of one MRC per subtomogram")
    s.set_defaults(func=run_subtomos)

    t = sub.add_parser("tomograms", help="tomograms + truth.star with particle centres and classes",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _outdir_argument(t)
    _common(t)
    t.set_defaults(snr=0.05)
    t.add_argument("--n-tomograms", type=int, default=2, help="number of tomograms")
    t.add_argument("--shape", default="96,256,256", help="tomogram size z,y,x in voxels")
    t.add_argument("--n-particles", type=int, default=60, help="particles per tomogram")
    t.add_argument("--snr-box", type=int, default=24,
                   help="side of the particle-centred cubes over which the signal variance is measured")
    t.add_argument("--slab", type=float, default=None,
                   help="thickness in voxels of the specimen layer, centred in z, that holds "
                        "the particles and gold (default: the whole volume)")
    t.add_argument("--no-distractors", dest="distractors", action="store_false",
                   default=argparse.SUPPRESS,
                   help="leave out the two gold fiducials and the vesicle membrane (included "
                        "unless this is given)")
    t.add_argument("--reconstruction", choices=("fourier", "wbp"), default="fourier",
                   help="'fourier': CTF and missing wedge applied in Fourier space; 'wbp': "
                        "projected at every tilt (per-image CTF, dose-symmetric damage, noise "
                        "growing with 1/cos tilt), phase flipped and back-projected (protein dark)")
    t.add_argument("--tilt-step", type=float, default=d["tilt_step"],
                   help="with --reconstruction wbp: angle between images (degrees)")
    t.add_argument("--dose-per-tilt", type=float, default=d["dose_per_tilt"],
                   help="with --reconstruction wbp: exposure of one image in e/A^2")
    t.set_defaults(func=run_tomograms)

    add_tiltseries_parser(sub)
    add_like_real_parser(sub)

    c = sub.add_parser("classes", help="list the template classes and class sets")
    c.add_argument("--voxel-A", dest="voxel_A", type=float, default=14.0)
    c.set_defaults(func=run_classes)


def _classes(args):
    """--class-set NAME is --classes NAME; giving both (differently) is an error."""
    if args.class_set is None:
        return args.classes
    if args.classes not in ("default", args.class_set):
        from ..errors import EngineError
        raise EngineError(f"--classes {args.classes} and --class-set {args.class_set} disagree: "
                          "give only one of them")
    return args.class_set


def run_subtomos(args):
    from ..simulate import simulate_subtomograms
    with simulation_folder(args) as folder:
        star = simulate_subtomograms(
            folder, classes=_classes(args), n_per_class=args.n_per_class, snr=args.snr,
            tilt=args.tilt, size=args.size, voxel_A=args.voxel_A, seed=args.seed, stack=args.stack,
            max_shift=args.max_shift, defocus_um=args.defocus_um, snr_mode=args.snr_mode,
            defocus_spread_um=args.defocus_spread_um, junk_fraction=args.junk_fraction)
    print(os.path.join(args.outdir, os.path.basename(star)))  # the swapped-in file


def run_tomograms(args):
    from ..simulate import simulate_tomograms
    with simulation_folder(args) as folder:
        _, truth = simulate_tomograms(
            folder, n_tomograms=args.n_tomograms, shape=args.shape, voxel_A=args.voxel_A,
            classes=_classes(args), n_particles=args.n_particles, snr=args.snr, tilt=args.tilt,
            seed=args.seed, distractors=getattr(args, "distractors", True), defocus_um=args.defocus_um,
            snr_box=args.snr_box, slab=args.slab, defocus_spread_um=args.defocus_spread_um,
            reconstruction=args.reconstruction, tilt_step=args.tilt_step,
            dose_per_tilt=args.dose_per_tilt)
    print(os.path.join(args.outdir, os.path.basename(truth)))


def run_classes(args):
    from ..simulate.templates import CLASS_SETS, describe
    print(f"{'name':10s} {'~kDa':>6s} {'diam A':>7s} {'r95 vox':>8s}  description (at {args.voxel_A:g} A/voxel)")
    for name, desc, kda, diam, r95 in describe(voxel_a=args.voxel_A):
        print(f"{name:10s} {kda:6d} {diam:7d} {r95:8.1f}  {desc}")
    print()
    for set_name, names in CLASS_SETS.items():
        print(f"{set_name:10s} {','.join(names)}")


def _classes_options(p):
    p.add_argument("--classes", default="default",
                   help="a number (first N of the default set), a set name (default, similar, "
                        "different, all, similar_tuning, similar_report), or comma-separated class "
                        "names and/or paths of your own .mrc/.map maps or .pdb/.cif models")
    p.add_argument("--class-set", choices=("default", "similar", "different", "all", "similar_tuning",
                                           "similar_report"), default=None,
                   help="a named class set (same as --classes NAME)")


def add_tiltseries_parser(sub):
    d = TILTSERIES_DEFAULTS
    s = sub.add_parser(
        "tiltseries", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="realistic subtomograms: crowded scenes through a simulated tilt series and WBP",
        description="Each box is cut from a crowded scene (neighbours, membranes, gold) projected "
                    "at every tilt, with per-image CTF, dose-symmetric radiation damage and noise "
                    "growing with 1/cos(tilt), phase flipped, exposure weighted and reconstructed "
                    "by Fourier insertion (docs/simulator.md).")
    _outdir_argument(s)
    _classes_options(s)
    s.add_argument("--n-per-class", type=int, default=40, help="subtomograms per class")
    s.add_argument("--snr", type=float, default=d["snr"],
                   help="var(particle signal) / var(noise) in the box, after reconstruction")
    s.add_argument("--snr-mode", choices=("particle", "dataset"), default="particle",
                   help="'particle': every box has the SNR; 'dataset': one noise level for all")
    s.add_argument("--tilt", type=float, default=60.0, help="largest tilt angle (degrees)")
    s.add_argument("--tilt-step", type=float, default=d["tilt_step"], help="angle between images (degrees)")
    s.add_argument("--dose-per-tilt", type=float, default=d["dose_per_tilt"],
                   help="exposure of one image in e/A^2 (dose-symmetric order)")
    s.add_argument("--defocus-um", default=d["defocus_um"],
                   help="underfocus in um: one value, or LO,HI drawn uniformly per particle")
    s.add_argument("--defocus-spread-um", type=float, default=0.0,
                   help="extra underfocus per image, uniform in +- this (um)")
    s.add_argument("--neighbours", default=d["neighbours"],
                   help="neighbours reaching into each box: N, or LO,HI drawn uniformly per box")
    s.add_argument("--neighbour-classes", default=None,
                   help="classes the neighbours are drawn from (default: the template half of "
                        "--classes, or all templates if it spans both)")
    s.add_argument("--membrane-fraction", type=float, default=d["membrane_fraction"],
                   help="fraction of the particle boxes crossed by a membrane")
    s.add_argument("--gold-fraction", type=float, default=d["gold_fraction"],
                   help="fraction of the particle boxes with a gold bead next to them")
    s.add_argument("--junk-fraction", type=float, default=0.0,
                   help="fraction of boxes without a particle (empty, gold, membrane in turn)")
    s.add_argument("--size", type=int, default=24, help="box size in voxels")
    s.add_argument("--voxel-A", dest="voxel_A", type=float, default=14.0, help="voxel size in A (>= 7)")
    s.add_argument("--max-shift", type=float, default=2.0,
                   help="largest random shift of the particle centre per axis, voxels")
    s.add_argument("--ctf-correction", choices=("phaseflip", "none"), default="phaseflip",
                   help="'phaseflip': images multiplied by sign(CTF) before back-projection")
    s.add_argument("--contrast", choices=("bright", "dark"), default="bright",
                   help="protein white (WarpTools/RELION subtomograms) or black (raw tomograms)")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument("--stack", action="store_true",
                   help="write one particles.mrcs stack instead of one MRC per subtomogram")
    s.set_defaults(func=run_tiltseries)


def parse_pair(text, flag, cast=float):
    """'A' -> A, 'A,B' -> (A, B); anything else is a one-line error naming ``flag``."""
    from ..errors import EngineError
    parts = [t.strip() for t in str(text).split(",")]
    try:
        values = [cast(t) for t in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2):
        raise EngineError(f"{flag} {text}: give one number or two separated by a comma, e.g. "
                          f"{flag} {'0,3' if cast is int else '2.5,5'}")
    return values[0] if len(values) == 1 else tuple(values)


def run_tiltseries(args):
    from ..simulate import simulate_tiltseries_subtomograms
    defocus = parse_pair(args.defocus_um, "--defocus-um")
    neighbours = parse_pair(args.neighbours, "--neighbours", int)
    with simulation_folder(args) as folder:
        star = simulate_tiltseries_subtomograms(
            folder, classes=_classes(args), n_per_class=args.n_per_class, snr=args.snr,
            tilt=args.tilt, tilt_step=args.tilt_step, defocus_um=defocus, neighbours=neighbours,
            membrane_fraction=args.membrane_fraction, gold_fraction=args.gold_fraction,
            junk_fraction=args.junk_fraction, size=args.size, voxel_A=args.voxel_A, seed=args.seed,
            stack=args.stack, max_shift=args.max_shift, defocus_spread_um=args.defocus_spread_um,
            dose_per_tilt=args.dose_per_tilt, snr_mode=args.snr_mode,
            ctf_correction=args.ctf_correction, contrast=args.contrast,
            neighbour_classes=args.neighbour_classes)
    print(os.path.join(args.outdir, os.path.basename(star)))  # the swapped-in file


def add_like_real_parser(sub):
    s = sub.add_parser(
        "like-real", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="boxes of a template through the tilt series of a real particle set",
        description="Simulated boxes with the tilt geometry, defocus, exposure, visible frames, "
                    "processing and measured noise spectrum of a real RELION 5 / WarpTools "
                    "particle set (e.g. tests/data/real/empiar10499_ribosomes), for benchmarks "
                    "that mix real and simulated boxes (docs/simulator.md).")
    _outdir_argument(s)
    s.add_argument("--real", required=True, metavar="DIR",
                   help="folder of the real set: particles.star, subtomos/ and "
                        "source/*_optimisation_set.star with its STAR files and tilt series")
    _classes_options(s)
    s.add_argument("--n-per-class", type=int, default=40, help="subtomograms per class")
    s.add_argument("--snr", type=float, default=0.008,
                   help="var(signal) / var(noise) per box (the real boxes: 0.006-0.01)")
    s.add_argument("--max-shift", type=float, default=1.0,
                   help="largest random shift of the particle centre per axis, voxels")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument("--stack", action="store_true",
                   help="write one particles.mrcs stack instead of one MRC per subtomogram")
    s.set_defaults(func=run_like_real)


def run_like_real(args):
    from ..simulate.boxfiles import simulate_like_real
    with simulation_folder(args) as folder:
        star = simulate_like_real(folder, args.real, _classes(args), args.n_per_class,
                                  args.snr, args.seed, args.max_shift, args.stack)
    print(os.path.join(args.outdir, os.path.basename(star)))  # the swapped-in file


def _outdir_argument(parser):
    parser.add_argument("outdir")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier simulation in OUTDIR (only the files it wrote)")


@contextlib.contextmanager
def simulation_folder(args):
    """Where a simulation writes: OUTDIR when it is new or empty; with --overwrite of an
    earlier simulation, a staging folder swapped in at the end for the names the earlier
    one listed in its disca-run.json (nothing stale stays mixed in, nothing of the user's is
    touched, and a failed simulation leaves the earlier one as it was)."""
    from .. import contract
    from ..io.manifest import write_manifest
    from ..io.outdir import check_output_folder, fresh_folder
    folder = check_output_folder(args.outdir, "OUTDIR")
    owned = _earlier_simulation(folder, args.overwrite)
    work = folder if owned is None else os.path.join(folder, contract.STAGING_DIR)
    if owned is not None:
        remove(work)  # a killed earlier --overwrite
    try:
        with fresh_folder(work):
            yield work
    except BaseException:
        if owned is not None:
            remove(work)
        raise
    write_manifest(work, "simulate", sorted(set(os.listdir(work)) | {contract.RUN_MANIFEST}))
    if owned is not None:
        swap_in(folder, work, owned)


def _earlier_simulation(folder, overwrite):
    """None for a new or empty OUTDIR; the names of an earlier simulation to replace."""
    from .. import contract
    from ..errors import EngineError
    from ..io.manifest import command_of, owned_names
    present = [n for n in (os.listdir(folder) if os.path.isdir(folder) else [])
               if n != contract.STAGING_DIR]
    if not present:
        return None
    if not overwrite:
        raise EngineError(f"OUTDIR {folder} is not empty (an earlier simulation?): choose a new "
                          "folder, or add --overwrite to replace the earlier simulation")
    owned = owned_names(folder) if command_of(folder) == "simulate" else []
    foreign = [n for n in present if n not in owned]
    if foreign:
        raise EngineError(f"OUTDIR {folder} holds {', '.join(foreign[:5])} that 'disca-engine "
                          "simulate' did not write: move them away or choose a new folder")
    return owned
