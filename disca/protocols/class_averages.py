# -*- coding: utf-8 -*-
"""Class averages computed in Scipion's environment from a clusters STAR (classify)."""
import os

from disca_engine.contract import CLASS, IMAGE
from disca_engine.io.star import read_particles

from .conversion import averagePath


def writeClassAverages(clustersStar, outDir, voxelSize=None):
    """Mean volume of each class of a clusters STAR -> outDir/averages/class_NNN.mrc.

    Volumes are read one at a time (memory stays at one box per class). Returns the number
    of averages written.
    """
    import numpy as np
    from disca_engine.io.mrc import read_image, write_volume
    table = read_particles(clustersStar)
    baseDir = os.path.dirname(os.path.abspath(clustersStar))
    sums, counts = {}, {}
    for name, cls in zip(table[IMAGE], table[CLASS]):
        cls = int(cls)
        vol = np.asarray(read_image(name, baseDir), dtype=np.float64)
        sums[cls] = sums.get(cls, 0.0) + vol
        counts[cls] = counts.get(cls, 0) + 1
    for cls in sums:
        write_volume(averagePath(outDir, cls), sums[cls] / counts[cls], voxel_size=voxelSize)
    return len(sums)
