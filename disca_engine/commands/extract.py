"""``disca-engine extract``: boxes around picks -> normalised MRCs + particles.star."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "extract", help="cut normalised subtomograms around picks",
        description="Cut cubic boxes centred on the coordinates (box centre = voxel index box//2), "
                    "normalise each to zero mean and unit variance, write DIR/subtomos/*.mrc, "
                    "DIR/particles.star and DIR/extraction.json. Boxes crossing the tomogram's "
                    "border are skipped and counted, or padded (--pad).")
    p.add_argument("--tomogram", required=True, help="tomogram (MRC) the coordinates refer to")
    p.add_argument("--coords", required=True, help="coordinates STAR (e.g. from disca-engine pick)")
    p.add_argument("--box", type=int, default=24, help="box size in output (binned) voxels (default 24)")
    p.add_argument("--bin", type=int, default=1, help="bin boxes by N (block average; default 1)")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--tomo-name", help="take the rows with this _rlnTomoName (needed when the STAR has "
                   "several tomograms; default: the tomogram's file name without extension)")
    p.add_argument("--voxel-A", type=float, help="input voxel size in Angstrom (default: MRC header)")
    p.add_argument("--stack", action="store_true",
                   help="write all boxes into one volume stack DIR/subtomos/<tomo>.mrcs (images "
                        "N@subtomos/<tomo>.mrcs) instead of one MRC per box: much faster for many boxes")
    p.add_argument("--pad", choices=["skip", "noise", "mean"], default="skip",
                   help="boxes crossing the border whose pick is inside the tomogram: skip them "
                        "(default), or fill the missing part with noise of the box's mean and sd "
                        "or with its mean (flagged: _discaPaddedFraction in particles.star)")
    p.set_defaults(func=run)


def run(args):
    from ..extraction import extract_file
    from ..picking.files import tomo_name_for
    from ..io.star import read_star
    name = args.tomo_name
    if name is None:
        # several tomograms in one file: default to this tomogram's name
        t = read_star(args.coords)
        if "rlnTomoName" in t and len(set(t["rlnTomoName"])) > 1:
            name = tomo_name_for(args.tomogram)
    extract_file(args.tomogram, args.coords, args.box, args.output, bin=args.bin, tomo_name=name,
                 voxel_A=args.voxel_A, stack=args.stack, pad=args.pad)
