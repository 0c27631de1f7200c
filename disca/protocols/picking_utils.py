# -*- coding: utf-8 -*-
"""Small helpers shared by the picking/extraction protocols and their wizards.

Pure functions (no protocol state) so the wizards and tests can use them directly.
"""
import math
import re

from .. import constants as C
from .form_values import parseOptional

# What the picking form's automatic fields show (form_values.isAuto reads them as automatic).
MIN_DISTANCE_PER_DIAMETER = 0.8   # the engine's default (picking.pipeline)
AUTO_MIN_DISTANCE = 'auto: %g x diameter' % MIN_DISTANCE_PER_DIAMETER
AUTO_BORDER = 'auto: particle radius'
AUTO_BOX = 'auto: %g x diameter' % C.BOX_DIAMETER_FACTOR
AUTO_THRESHOLD = 'auto: the automatic threshold'
NO_LIMIT = 'no limit'
# A diameter above this fraction of the tomogram's smallest side is most likely a typo.
MAX_DIAMETER_FRACTION = 0.5


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
    ('auto...' text, or the negative numbers of older projects, mean automatic: the key is
    left out and the engine decides). Raises ValueError naming a bad field."""
    kw = dict(particle_diameter_A=float(diameter),
              contrast=C.CONTRAST_CHOICES[int(contrast)],
              sigma_ratio=float(sigmaRatio),
              bin=int(binning or 1))
    manual = None
    if int(thresholdMode) == C.THRESHOLD_MANUAL:
        manual = parseOptional(threshold, float, 'Threshold (absolute DoG value)')
    if manual is not None:
        kw['threshold'] = manual
    else:  # automatic mode, or manual before a value was given: the automatic threshold
        kw['threshold_sigma'] = float(3.0 if thresholdSigma is None else thresholdSigma)
    optional = (('min_distance_A', minDistance, float, 'Minimum distance', -1e-9),
                ('max_picks', maxPicks, int, 'Maximum picks per tomogram', 0),
                ('border_A', border, float, 'Border exclusion', -1e-9))
    for key, text, cast, label, autoBelow in optional:
        value = parseOptional(text, cast, label, autoBelow=autoBelow)
        if value is not None:
            kw[key] = value
    return kw


def diameterWarnings(diameterA, tomos):
    """Warnings when the particle diameter is implausibly large for the tomograms (a typo
    such as 400200 Å instead of 200 Å)."""
    sr = tomos.getSamplingRate() if tomos is not None else None
    if not diameterA or not sr:
        return []
    sides = [min(t.getDim()) for t in tomos.iterItems() if t.getDim()]
    if not sides:
        return []
    smallest = min(sides) * sr
    if diameterA > MAX_DIAMETER_FRACTION * smallest:
        return ['The particle diameter (%g Å) is more than half of the smallest tomogram side '
                '(%g Å): check it (and the sampling rate, %g Å/voxel).'
                % (diameterA, smallest, sr)]
    return []


def setName(pointer):
    """How a user knows an input set: its label, else "<output> of run '<run name>'"."""
    obj = pointer.get()
    if obj is None:
        return 'the input'
    if obj.getObjLabel():
        return obj.getObjLabel()
    prot, extended = pointer.getObjValue(), pointer.getExtended()
    if extended and prot is not None and hasattr(prot, 'getRunName'):
        return "%s of run '%s'" % (extended, prot.getRunName())
    return 'the input %s' % obj.getClassName()


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
