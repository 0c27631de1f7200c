# -*- coding: utf-8 -*-
"""Synthetic test data for the Scipion tests: small simulated tomograms with ground truth.

Used from a test's ``setUpClass`` (after ``setupTestProject``) so no download is needed::

    data = SyntheticTomograms.create(cls)        # simulate + import (about 3 s)
    data.tomograms                               # SetOfTomograms (output of the import)
    data.truth['tomo_001']                       # (N x 3 xyz 0-based voxel centres, classes)
"""
import glob
import os

import numpy as np

from disca_engine.io.mrc import write_volume
from disca_engine.io.star import read_star

# Small enough to keep each test file well under a minute on 2 cores.
SHAPE = (64, 160, 160)      # z, y, x
VOXEL_A = 14.0
N_TOMOGRAMS = 2
N_PARTICLES = 30
CLASSES = 3                 # ribosome (330 Å), TRiC (190 Å), RuvAB (140 Å)
SNR = 0.1
SEED = 1
DIAMETER_A = 200.0          # a DoG diameter that finds all three classes


def simulate(folder, n_tomograms=N_TOMOGRAMS, shape=SHAPE, voxel_A=VOXEL_A,
             n_particles=N_PARTICLES, classes=CLASSES, snr=SNR, seed=SEED):
    """Write tomo_001.mrc... and truth.star into ``folder`` (reused if already there)."""
    from disca_engine.simulate import simulate_tomograms
    truth = os.path.join(folder, 'truth.star')
    paths = sorted(glob.glob(os.path.join(folder, 'tomo_*.mrc')))
    if os.path.exists(truth) and len(paths) == n_tomograms:
        return paths, truth
    return simulate_tomograms(folder, n_tomograms=n_tomograms, shape=shape, voxel_A=voxel_A,
                              classes=classes, n_particles=n_particles, snr=snr, seed=seed)


def readTruth(truthStar):
    """tomoName -> (xyz N x 3 float, true classes N int)."""
    table = read_star(truthStar)
    names = np.array(table['rlnTomoName'])
    xyz = np.stack([table.column('rlnCoordinate%s' % a, float) for a in 'XYZ'], axis=1)
    classes = table.column('discaTrueClass', int)
    return {n: (xyz[names == n], classes[names == n]) for n in sorted(set(names))}


def binTomograms(paths, folder, factor):
    """Block-averaged copies (same file names) in ``folder``: tomograms of another sampling."""
    import mrcfile
    os.makedirs(folder, exist_ok=True)
    out = []
    for path in paths:
        with mrcfile.open(path, permissive=True) as mrc:
            data = np.asarray(mrc.data, dtype=np.float32)
            voxel = float(mrc.voxel_size.x)
        nz, ny, nx = (n // factor for n in data.shape)
        data = data[:nz * factor, :ny * factor, :nx * factor]
        binned = data.reshape(nz, factor, ny, factor, nx, factor).mean(axis=(1, 3, 5))
        dst = os.path.join(folder, os.path.basename(path))
        write_volume(dst, binned.astype(np.float32), voxel * factor)
        out.append(dst)
    return out


def importTomograms(testCls, folder, samplingRate, pattern='tomo_*.mrc', label=None):
    """Import the tomograms of ``folder`` into the test project; returns the SetOfTomograms."""
    from tomo.protocols import ProtImportTomograms
    prot = testCls.newProtocol(ProtImportTomograms, filesPath=folder, filesPattern=pattern,
                               samplingRate=samplingRate)
    if label:
        prot.setObjLabel(label)
    testCls.launchProtocol(prot)
    tomos = getattr(prot, 'Tomograms', None)
    if tomos is None:
        raise RuntimeError('importing the synthetic tomograms from %s failed' % folder)
    return tomos


class SyntheticTomograms:
    """Simulated tomograms imported into a test project, with their ground truth."""

    def __init__(self, folder, paths, truthStar, tomograms):
        self.folder = folder
        self.paths = paths
        self.truthStar = truthStar
        self.truth = readTruth(truthStar)
        self.tomograms = tomograms
        self.voxel_A = VOXEL_A
        self.diameter_A = DIAMETER_A

    @classmethod
    def create(cls, testCls, subfolder='synthetic', **simulateKw):
        """Simulate into the test project's folder and import; call after setupTestProject."""
        folder = os.path.abspath(testCls.getOutputPath(subfolder))
        paths, truth = simulate(folder, **simulateKw)
        tomos = importTomograms(testCls, folder, simulateKw.get('voxel_A', VOXEL_A),
                                label='synthetic tomograms')
        return cls(folder, paths, truth, tomos)
