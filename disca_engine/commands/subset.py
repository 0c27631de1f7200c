"""``disca-engine subset``: the rows of a cluster run's clusters.star that a selection file
(made in the report's embedding, ``disca_engine/selection.py``) names, as a STAR file that
RELION and every engine command read."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "subset", help="clusters.star rows chosen in the report's embedding -> a STAR file",
        description="Write the rows of CLUSTERS/clusters.star listed in a selection file "
                    "(disca-selection.tsv, downloaded from the report's embedding) as a STAR "
                    "file with the same blocks and columns, rows in clusters.star order.")
    p.add_argument("--clusters", required=True,
                   help="a 'cluster' or 'predict' output folder, or its clusters.star")
    p.add_argument("--selection", required=True, help="selection file from the report")
    p.add_argument("--output", required=True, help="STAR file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    p.set_defaults(func=run)
    return p


def run(args):
    import os

    from .. import contract
    from ..errors import EngineError
    from ..io import star
    from ..io.outdir import check_output_file, refuse_overwriting_inputs
    from ..selection import check_against, read_selection

    star_path = (os.path.join(args.clusters, contract.CLUSTERS_STAR)
                 if os.path.isdir(args.clusters) else args.clusters)
    out = check_output_file(args.output, example="selected.star")
    refuse_overwriting_inputs([out], [("clusters STAR", star_path), ("selection", args.selection)])
    if os.path.exists(out) and not args.overwrite:
        raise EngineError(f"--output {out} exists: give --overwrite to replace it")
    selection = read_selection(args.selection)
    table = star.read_particles(star_path)
    rows = sorted(check_against(selection, table, star_path, args.selection))
    star.write_star(out, table.take(rows), blocks=star.read_blocks(star_path),
                    comment=f"{len(rows)} of {len(table)} rows of {os.path.abspath(star_path)} "
                            f"selected in {os.path.abspath(args.selection)}")
    print(f"{len(rows)} of {len(table)} subtomograms -> {out}")
