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
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier extraction in DIR: the new one is written beside it "
                        "and swapped in when complete (a failed run keeps the earlier one); only "
                        "the boxes the earlier particles.star names are removed")
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
    extract_file(args.tomogram, args.coords, args.box, args.output, bin=args.bin,
                 tomo_name=tomo_name_to_use(args.coords, args.tomogram, args.tomo_name),
                 voxel_A=args.voxel_A, stack=args.stack, pad=args.pad, overwrite=args.overwrite)


def tomo_name_to_use(coords, tomogram, given):
    """The _rlnTomoName whose rows are cut from ``tomogram``: the one given, else the
    tomogram's file stem. Coordinates of one other tomogram are refused (cutting them from
    this one gives boxes of nothing)."""
    from .. import contract
    from ..errors import EngineError
    from ..io.star import read_star
    from ..picking.files import tomo_name_for
    if given is not None:
        return given
    table = read_star(coords)
    stem = tomo_name_for(tomogram)
    names = sorted(set(table[contract.TOMO_NAME])) if contract.TOMO_NAME in table else []
    if len(names) == 1 and names[0] != stem:
        raise EngineError(f"{coords} holds coordinates of tomogram '{names[0]}', not of {tomogram} "
                          f"('{stem}'): give that tomogram, or --tomo-name {names[0]} if they are the same")
    return stem if len(names) > 1 else None
