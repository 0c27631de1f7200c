# -*- coding: utf-8 -*-
"""Small helpers shared by the picking/extraction protocols and their wizards.

Pure functions (no protocol state) so the wizards and tests can use them directly.
"""
import math
import re

from .. import constants as C


def suggestedBoxSize(diameterA, samplingRate, factor=C.BOX_DIAMETER_FACTOR,
                     minimum=C.MIN_BOX):
    """Box (voxels) for particles of ``diameterA`` at ``samplingRate`` Å/voxel:
    ``factor`` x diameter, rounded up to an even number, at least ``minimum``."""
    if not diameterA or not samplingRate or diameterA <= 0 or samplingRate <= 0:
        raise ValueError('particle diameter and sampling rate must be positive')
    box = int(math.ceil(factor * diameterA / samplingRate))
    box += box % 2
    return max(int(minimum), box)


def itemKey(tomo):
    """File-name-safe key of a tomogram: its tsId, else ``tomo_<objId>``."""
    key = tomo.getTsId() or 'tomo_%d' % tomo.getObjId()
    return re.sub(r'[^A-Za-z0-9_.-]', '_', str(key))


def workersPerStep(threads, nItems):
    """FFT/IO workers for one of ``nItems`` steps running in parallel on ``threads``."""
    threads = max(1, int(threads or 1))
    concurrent = max(1, min(threads, int(nItems or 1)))
    return max(1, threads // concurrent)


def engineError(what, exc):
    """Exception for a step, naming the item and carrying the engine's one-line fix."""
    return Exception('DISCA failed on %s: %s' % (what, exc))


def pickingDefaults(diameter, contrast, thresholdMode, thresholdSigma, threshold,
                    minDistance, maxPicks, border, sigmaRatio, binning):
    """Keyword arguments of ``disca_engine.picking.pick_tomogram`` from form values
    (negative values mean 'automatic')."""
    kw = dict(particle_diameter_A=float(diameter),
              contrast=C.CONTRAST_CHOICES[int(contrast)],
              sigma_ratio=float(sigmaRatio),
              bin=int(binning or 1))
    if int(thresholdMode) == C.THRESHOLD_MANUAL:
        kw['threshold'] = float(threshold)
    else:
        kw['threshold_sigma'] = float(thresholdSigma)
    if minDistance is not None and minDistance >= 0:
        kw['min_distance_A'] = float(minDistance)
    if maxPicks is not None and maxPicks > 0:
        kw['max_picks'] = int(maxPicks)
    if border is not None and border >= 0:
        kw['border_A'] = float(border)
    return kw


def checkTomogramSet(tomos, minSizeA=0.0, what='particle diameter'):
    """_validate errors for a set of tomograms: empty, no sampling rate, or smaller
    (in Å) than ``minSizeA``."""
    errors = []
    if tomos.getSize() == 0:
        return ['The input set of tomograms is empty: choose a set with tomograms.']
    sr = tomos.getSamplingRate()
    if not sr or sr <= 0:
        return ['The input tomograms have no sampling rate: re-import them giving the '
                'sampling rate (Å/voxel).']
    for tomo in tomos.iterItems():
        dims = tomo.getDim()
        if not dims:
            errors.append('Cannot read the dimensions of tomogram %s (%s): check the file.'
                          % (tomo.getTsId(), tomo.getFileName()))
            continue
        smallest = min(dims) * sr
        if minSizeA and minSizeA > smallest:
            errors.append('The %s (%g Å) is larger than tomogram %s (%g Å along its '
                          'smallest side): check the diameter and the sampling rate.'
                          % (what, minSizeA, tomo.getTsId(), smallest))
    return errors
