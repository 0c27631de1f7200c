#!/usr/bin/env python
"""Build the simulator's template maps (``disca_engine/data/templates/*.mrc``).

Atomic models (PDB or mmCIF, optionally gzipped) are turned into density maps:
atoms are splatted (trilinear) on a fine grid weighted by their atomic number, blurred
by a Gaussian of ``--blur`` reference voxels, block-summed to the reference voxel size
(7 A by default, so the simulator can rescale them to any voxel size >= 7 A) and
converted to contrast against vitreous ice (see ``disca_engine.simulate.templates``).
The procedural phantoms of ``disca_engine.simulate.phantoms`` are rendered too, so the
installed package needs nothing outside itself.

    python scripts/build_templates.py                    # default structures folder
    python scripts/build_templates.py --structures DIR --out DIR

The parser and splatting live in ``disca_engine.simulate.atoms`` (also used for user
models passed to ``--classes``).
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from disca_engine.io.mrc import write_volume  # noqa: E402
from disca_engine.simulate import phantoms  # noqa: E402
from disca_engine.simulate.atoms import atomic_map  # noqa: E402
from disca_engine.simulate.templates import REFERENCE_VOXEL_A  # noqa: E402

# (file in the structures folder, template name, chain ids to keep: a prefix or a tuple of
# prefixes, None for all). 4V8R holds two TRiC complexes (chains A* and B*): keep one; its
# single ring is the eight chains with an upper-case second letter. 6ZU5's chains are L*
# (60S subunit) and S* (40S); half of 7PBL's RuvB hexamer is chains A-C.
TRIC_RING = ("AA", "AB", "AD", "AE", "AG", "AH", "AQ", "AZ")
STRUCTURES = [
    ("6zu5_80S_ribosome.cif.gz", "ribosome", None),
    ("4v8r_TRiC.pdb.gz", "tric", "A"),
    ("7pbl_RuvAB.pdb.gz", "ruvab", None),
    ("6zu5_80S_ribosome.cif.gz", "ribo60s", "L"),
    ("6zu5_80S_ribosome.cif.gz", "ribo40s", "S"),
    ("4v8r_TRiC.pdb.gz", "tric_ring", TRIC_RING),
    ("7pbl_RuvAB.pdb.gz", "ruvb3", ("A", "B", "C")),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--structures", default=os.path.join(os.path.dirname(HERE), "..", "shared",
                                                         "data", "structures"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "disca_engine", "data",
                                                  "templates"))
    ap.add_argument("--voxel-A", type=float, default=REFERENCE_VOXEL_A)
    ap.add_argument("--blur", type=float, default=0.4, help="Gaussian sigma in reference voxels")
    ap.add_argument("--only", help="comma-separated template names to (re)build")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    for fname, name, chains in STRUCTURES:
        if only and name not in only:
            continue
        path = os.path.join(args.structures, fname)
        vol, natoms, unknown = atomic_map(path, args.voxel_A, args.blur, chains)
        if unknown:
            print(f"  {fname}: unknown elements counted as carbon: {unknown}")
        write_volume(os.path.join(args.out, f"{name}.mrc"), vol, args.voxel_A)
        print(f"{name}: {natoms} atoms -> {vol.shape} at {args.voxel_A} A")
    for name in phantoms.PHANTOMS:
        if only and name not in only:
            continue
        vol = phantoms.render(name, args.voxel_A)
        write_volume(os.path.join(args.out, f"{name}.mrc"), vol, args.voxel_A)
        print(f"{name}: phantom -> {vol.shape} at {args.voxel_A} A")


if __name__ == "__main__":
    main()
