"""``disca-engine simulate {subtomos,tomograms,classes}``: synthetic data with ground truth."""
import argparse


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


def add_parser(subparsers):
    p = subparsers.add_parser("simulate", help="simulate subtomograms or tomograms with ground truth",
                              description="Realistic synthetic cryo-ET data (CTF, missing wedge, "
                                          "wedge-filtered noise) from real complexes and phantoms.")
    sub = p.add_subparsers(dest="what", metavar="WHAT")
    sub.required = True

    s = sub.add_parser("subtomos", help="subtomograms + particles.star with true classes",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("outdir")
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
    t.add_argument("outdir")
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
    t.set_defaults(func=run_tomograms)

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
    from ..io.outdir import check_output_folder, fresh_folder
    from ..simulate import simulate_subtomograms
    check_output_folder(args.outdir, "OUTDIR")
    with fresh_folder(args.outdir):
        star = simulate_subtomograms(
            args.outdir, classes=_classes(args), n_per_class=args.n_per_class, snr=args.snr,
            tilt=args.tilt, size=args.size, voxel_A=args.voxel_A, seed=args.seed, stack=args.stack,
            max_shift=args.max_shift, defocus_um=args.defocus_um, snr_mode=args.snr_mode,
            defocus_spread_um=args.defocus_spread_um, junk_fraction=args.junk_fraction)
    print(star)


def run_tomograms(args):
    from ..io.outdir import check_output_folder, fresh_folder
    from ..simulate import simulate_tomograms
    check_output_folder(args.outdir, "OUTDIR")
    with fresh_folder(args.outdir):
        _, truth = simulate_tomograms(
            args.outdir, n_tomograms=args.n_tomograms, shape=args.shape, voxel_A=args.voxel_A,
            classes=_classes(args), n_particles=args.n_particles, snr=args.snr, tilt=args.tilt,
            seed=args.seed, distractors=getattr(args, "distractors", True), defocus_um=args.defocus_um,
            snr_box=args.snr_box, slab=args.slab, defocus_spread_um=args.defocus_spread_um)
    print(truth)


def run_classes(args):
    from ..simulate.templates import CLASS_SETS, describe
    print(f"{'name':10s} {'~kDa':>6s} {'diam A':>7s} {'r95 vox':>8s}  description (at {args.voxel_A:g} A/voxel)")
    for name, desc, kda, diam, r95 in describe(voxel_a=args.voxel_A):
        print(f"{name:10s} {kda:6d} {diam:7d} {r95:8.1f}  {desc}")
    print()
    for set_name, names in CLASS_SETS.items():
        print(f"{set_name:10s} {','.join(names)}")
