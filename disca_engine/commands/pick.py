"""``disca-engine pick``: DoG picking of one tomogram -> coords STAR."""
import argparse

from ..picking.pipeline import DEFAULT_SIGMA_RATIO, MIN_DISTANCE_PER_DIAMETER
from ..picking.threshold import DEFAULT_THRESHOLD_SIGMA

HELP = f"""Template-free Difference-of-Gaussians picking. DoG = G(sigma1)*v - G(sigma2)*v with
sigma1 = max(2 voxels, radius/sqrt(3)) (the scale at which the DoG answers most strongly to a
sphere of that radius) and sigma2 = ratio*sigma1, computed by FFT in z-chunks. Peaks are local
maxima (26 neighbours) above the threshold; of two peaks closer than the minimum distance the
weaker is dropped.

Threshold (automatic by default): median + k * 1.4826 * MAD of the DoG response over the
tomogram's interior (inside --mask if given), i.e. k robust standard deviations above the
background (k = --threshold-sigma, default {DEFAULT_THRESHOLD_SIGMA:g}). DoG over-picks on purpose; DISCA
sorts the picks. --threshold sets an absolute value in the units of the scores
(_rlnAutopickFigureOfMerit). The threshold used is printed and written in the STAR header.

Output: data_coordinates with _rlnTomoName, _rlnCoordinateX/Y/Z (0-based voxel centres of the
INPUT tomogram, also with --bin), _rlnAutopickFigureOfMerit (DoG score, larger = more particle-like)
and _discaDogZScore ((score - median) / robust sigma), sorted by score, highest first."""


def add_parser(subparsers):
    p = subparsers.add_parser("pick", help="DoG picking of one tomogram -> coordinates STAR",
                              description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="tomogram (MRC)")
    p.add_argument("--output", required=True, help="coordinates STAR file to write")
    p.add_argument("--particle-diameter-A", type=float, required=True,
                   help="particle diameter in Angstrom (sets sigmas, minimum distance and border)")
    p.add_argument("--voxel-A", type=float, help="voxel size in Angstrom (default: from the MRC header)")
    p.add_argument("--sigma-ratio", type=float, default=DEFAULT_SIGMA_RATIO,
                   help="sigma2 / sigma1 (default %(default)s)")
    p.add_argument("--threshold", type=float, help="absolute threshold on the DoG score (overrides "
                   "--threshold-sigma)")
    p.add_argument("--threshold-sigma", type=float, default=None,
                   help=f"automatic threshold: k robust sigmas above the background median "
                        f"(default {DEFAULT_THRESHOLD_SIGMA:g})")
    p.add_argument("--min-distance-A", type=float,
                   help=f"minimum distance between picks in Angstrom (default "
                        f"{MIN_DISTANCE_PER_DIAMETER:g} x diameter)")
    p.add_argument("--max-picks", type=int, help="keep at most N best picks (default: no cap)")
    p.add_argument("--contrast", choices=("dark", "bright"), default="dark",
                   help="particle contrast: dark (raw cryo-ET, default) or bright (inverted)")
    p.add_argument("--border-A", type=float,
                   help="no picks closer than this to the tomogram's faces (default: particle radius)")
    p.add_argument("--bin", type=int, default=1, help="pick on a tomogram binned by N (faster); "
                   "coordinates are still written in input voxels (default 1)")
    p.add_argument("--mask", help="MRC mask of the tomogram's shape: keep picks where mask > 0.5")
    p.add_argument("--tomo-name", help="_rlnTomoName to write (default: input file name without extension)")
    p.add_argument("--threads", type=int, help="FFT threads (default: all available cores)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    p.set_defaults(func=run)


def run(args):
    from ..picking.files import pick_file
    pick_file(args.input, args.output, args.particle_diameter_A, voxel_A=args.voxel_A,
              tomo_name=args.tomo_name, mask=args.mask, sigma_ratio=args.sigma_ratio,
              threshold=args.threshold, threshold_sigma=args.threshold_sigma,
              min_distance_A=args.min_distance_A, max_picks=args.max_picks, contrast=args.contrast,
              border_A=args.border_A, bin=args.bin, workers=args.threads, overwrite=args.overwrite)
