# -*- coding: utf-8 -*-
"""Cut normalised cubic subtomograms around 3D coordinates (any Scipion picker).

Runs the engine's numpy extraction inside this protocol's process (no TensorFlow env).
Steps: one conversion step writes every tomogram's coordinates (in that tomogram's
voxels) to ``extra/<tsId>/coords.star``; one parallel step per tomogram extracts the
boxes (``extra/<tsId>/subtomos/*.mrc`` + ``particles.star``, written last and atomically,
so a resumed run skips finished tomograms); the final step builds the outputs.
"""
import os
from enum import Enum

import numpy as np

from pyworkflow import BETA
import pyworkflow.protocol.params as params
from pyworkflow.object import Float, Integer, Pointer, String
from pyworkflow.protocol import STEPS_PARALLEL

from pwem.protocols import EMProtocol
from tomo.constants import BOTTOM_LEFT_CORNER
from tomo.objects import (Coordinate3D, SetOfCoordinates3D, SetOfSubTomograms, SubTomogram,
                          Tomogram)
from tomo.protocols import ProtTomoBase

from disca_engine.contract import IMAGE, ITEM_ID, PICK_INDEX, SCORE, TOMO_NAME

from .. import constants as C
from .form_values import parseOptional
from .picking_utils import engineError, itemKey, suggestedBoxSize, workersPerStep

SOURCE_COORDS = 0
SOURCE_OTHER = 1
# Boxes crossing the tomogram border: the engine's --pad choices.
BORDER_CHOICES = ['skip', 'noise', 'mean']
BORDER_SKIP = 0
AUTO_BOX = "auto: the coordinates' box"
PADDED_ATTR = '_discaPaddedFraction'


class DiscaExtractOutputs(Enum):
    subtomograms = SetOfSubTomograms
    coordinates = SetOfCoordinates3D


def rescaleVoxelCentres(xyz, factor):
    """Voxel-centre coordinates at one sampling -> at a sampling ``factor`` times finer
    (factor = old sampling / new sampling). Centres of 0-based voxels sit at
    (i + 0.5) x sampling from the corner, so i' = (i + 0.5) x factor - 0.5."""
    return (np.asarray(xyz, dtype=np.float64) + 0.5) * factor - 0.5


class DiscaProtExtract(EMProtocol, ProtTomoBase):
    """Extract cubic subtomograms centred on 3D coordinates, each normalised to zero mean
    and unit variance (what DISCA clustering expects).

    Coordinates may come from any picker and from tomograms of another sampling (e.g.
    picked on binned tomograms): they are rescaled to the voxels of the tomograms boxes
    are cut from. Optional binning block-averages the boxes (output sampling = tomogram
    sampling x binning). Boxes crossing the tomogram border are skipped and counted, or
    padded with noise or the box mean (flagged per subtomogram: _discaPaddedFraction).
    """
    _label = 'extract subtomograms'  # shown as 'disca - extract subtomograms'
    _devStatus = BETA
    _possibleOutputs = DiscaExtractOutputs
    stepsExecutionMode = STEPS_PARALLEL

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.nExtracted = Integer()
        self.nSkipped = Integer()
        self.skippedPerTomo = String()

    @classmethod
    def validateInstallation(cls):
        # Extraction runs in Scipion's process with numpy: no engine env needed.
        return []

    # --------------------------- DEFINE param functions ---------------------
    def _defineParams(self, form):
        form.addSection(label='Input')
        form.addParam('inputCoordinates', params.PointerParam, pointerClass='SetOfCoordinates3D',
                      important=True, label='Input coordinates',
                      help='3D coordinates from any picker (e.g. disca - DoG picking).')
        form.addParam('tomoSource', params.EnumParam, default=SOURCE_COORDS,
                      choices=['same as coordinates', 'other'],
                      display=params.EnumParam.DISPLAY_HLIST,
                      label='Tomograms to extract from',
                      help='same as coordinates: the tomograms the coordinates refer to. '
                           'other: e.g. unbinned or denoised tomograms of the same tilt '
                           'series (matched by tsId); coordinates are rescaled to their '
                           'sampling.')
        form.addParam('inputTomograms', params.PointerParam, pointerClass='SetOfTomograms',
                      condition='tomoSource == %d' % SOURCE_OTHER, allowsNull=True,
                      label='Tomograms',
                      help='Tomograms with the same tsIds as the coordinates\' tomograms.')
        form.addParam('boxSize', params.StringParam, default=AUTO_BOX,
                      label='Box size (output voxels)',
                      help='Edge of the cubic subtomograms, in voxels of the output (after '
                           'binning). auto: the box size stored with the coordinates, '
                           'converted to the output voxels (%d if they have none). The wizard '
                           'shows it, or computes %.1f x a particle diameter. DISCA uses 24; '
                           'the network needs at least 21.' % (C.DEFAULT_BOX,
                                                               C.BOX_DIAMETER_FACTOR))
        form.addParam('binning', params.IntParam, default=1, validators=[params.GE(1)],
                      label='Binning',
                      help='Block-average the boxes by this factor: output sampling = '
                           'tomogram sampling x binning. The box then covers box x binning '
                           'tomogram voxels.')
        form.addParam('borderBoxes', params.EnumParam, choices=BORDER_CHOICES,
                      default=BORDER_SKIP, display=params.EnumParam.DISPLAY_HLIST,
                      label='Boxes crossing the tomogram border',
                      help='skip: leave those picks out (counted in the summary). noise: cut '
                           'the part inside and fill the rest with noise of the box\'s own '
                           'mean and standard deviation; mean: fill it with the box\'s mean. '
                           'Picks outside the tomogram are always skipped. Padded subtomograms '
                           'carry the filled fraction (attribute _discaPaddedFraction).')
        form.addParallelSection(threads=4, mpi=0)

    # --------------------------- INSERT steps functions ---------------------
    def _insertAllSteps(self):
        convert = self._insertFunctionStep(self.convertInputStep, prerequisites=[])
        steps = []
        for key, tomoFile, sr in self._tomogramsToExtract():
            steps.append(self._insertFunctionStep(self.extractStep, key, tomoFile, sr,
                                                  prerequisites=[convert]))
        self._insertFunctionStep(self.createOutputStep, prerequisites=steps)

    # --------------------------- STEPS functions ----------------------------
    def convertInputStep(self):
        """Write each tomogram's coordinates, in its own voxels, to extra/<key>/coords.star."""
        from disca_engine.io.star import StarTable, write_star
        perTomo = self._coordinatesPerTomogram()
        for tomo in self.getTomograms().iterItems():
            rows = perTomo.get(tomo.getTsId())
            if not rows:
                continue
            key = itemKey(tomo)
            ids, xyz, scores = zip(*rows)
            table = StarTable(name='coordinates')
            table[TOMO_NAME] = [key] * len(ids)
            for k, axis in enumerate('XYZ'):
                table['rlnCoordinate%s' % axis] = ['%.3f' % p[k] for p in xyz]
            table[SCORE] = ['%.6g' % s for s in scores]
            table[ITEM_ID] = [str(i) for i in ids]
            os.makedirs(self._getExtraPath(key), exist_ok=True)
            write_star(self._coordsStar(key), table)

    def extractStep(self, key, tomoFile, samplingRate):
        from disca_engine.errors import EngineError
        from disca_engine.extraction import extract_file
        if os.path.exists(self._particlesStar(key)):  # atomic: complete from a previous run
            self.info('%s: already extracted, skipping' % key)
            return
        try:
            s = extract_file(tomoFile, self._coordsStar(key), self.getBoxSize(),
                             self._getExtraPath(key), bin=self.binning.get(), tomo_name=key,
                             voxel_A=samplingRate, pad=BORDER_CHOICES[self.borderBoxes.get()],
                             overwrite=True, allow_empty=True)
        except EngineError as exc:
            raise engineError('tomogram %s (%s)' % (key, tomoFile), exc)
        self.info('%s: %d subtomograms extracted (%d of them padded), %d skipped (box crossing '
                  'the border)' % (key, s.n_extracted, s.n_padded, s.n_skipped))

    def createOutputStep(self):
        from disca_engine.io.star import read_star
        tomos = self.getTomograms()
        sr = tomos.getSamplingRate()
        binning = self.binning.get()
        coordsOut = self._createSetOfCoordinates3D(tomos)
        coordsOut.setSamplingRate(sr)
        coordsOut.setBoxSize(self.getBoxSize() * binning)
        subtomos = self._createSetOfSubTomograms()
        subtomos.setSamplingRate(sr * binning)
        if tomos.getAcquisition() is not None:
            subtomos.setAcquisition(tomos.getAcquisition())
        extracted, skipped = 0, {}
        for tomo in tomos.iterItems():
            key = itemKey(tomo)
            if not os.path.exists(self._coordsStar(key)):
                continue
            nIn = len(read_star(self._coordsStar(key)))
            table = read_star(self._particlesStar(key))
            skipped[key] = nIn - len(table)
            for coord, subtomo in self._itemsOf(tomo, key, table, sr * binning):
                coordsOut.append(coord)
                subtomo.setCoordinate3D(coord)
                subtomos.append(subtomo)
                extracted += 1
        self.nExtracted.set(extracted)
        self.nSkipped.set(sum(skipped.values()))
        self.skippedPerTomo.set(', '.join('%s: %d' % kv for kv in skipped.items() if kv[1]))
        self._store(self.nExtracted, self.nSkipped, self.skippedPerTomo)
        if extracted == 0:
            raise Exception('No subtomogram could be extracted: every box crosses a tomogram '
                            'border (%d coordinates). Check that the coordinates belong to '
                            'these tomograms and lower the box size or binning.'
                            % self.nSkipped.get())
        coordsOut.setPrecedents(tomos)
        subtomos.setCoordinates3D(Pointer(self, extended=self._possibleOutputs.coordinates.name))
        self._defineOutputs(**{self._possibleOutputs.coordinates.name: coordsOut,
                               self._possibleOutputs.subtomograms.name: subtomos})
        self._defineSourceRelation(self.inputCoordinates, coordsOut)
        self._defineSourceRelation(self.inputCoordinates, subtomos)
        self._defineSourceRelation(self._tomogramsPointer(), subtomos)

    # --------------------------- INFO functions -----------------------------
    def _validate(self):
        coords = self.inputCoordinates.get()
        if coords is None:
            return []
        if self.tomoSource.get() == SOURCE_OTHER and self.inputTomograms.get() is None:
            return ['Choose the tomograms to extract from (or use the coordinates\' ones).']
        if coords.getSize() == 0:
            return ['The input set of coordinates is empty: pick particles first.']
        if not coords.getSamplingRate() or coords.getSamplingRate() <= 0:
            return ['The input coordinates have no sampling rate: set it when importing them.']
        tomos = self.getTomograms()
        if tomos is None or tomos.getSize() == 0:
            return ['The tomograms of the coordinates are missing or empty.']
        sr = tomos.getSamplingRate()
        if not sr or sr <= 0:
            return ['The tomograms have no sampling rate: re-import them with one.']
        errors = []
        haveIds = set(tomos.getTSIds())
        missing = sorted(set(coords.getTSIds()) - haveIds)
        if missing:
            errors.append('No tomogram with tsId %s in the chosen tomograms: choose tomograms '
                          'of the same tilt series as the coordinates.'
                          % ', '.join(str(m) for m in missing[:5]))
        try:
            box = self.getBoxSize()
        except ValueError as exc:
            return errors + [str(exc)]
        span = box * self.binning.get()
        for tomo in tomos.iterItems():
            dims = tomo.getDim()
            if dims and span > min(dims):
                errors.append('Box of %d voxels x binning %d = %d tomogram voxels is larger '
                              'than tomogram %s (%s voxels): lower the box size or binning.'
                              % (box, self.binning.get(), span,
                                 tomo.getTsId(), ' x '.join(str(d) for d in dims)))
                break
        return errors

    def _warnings(self):
        try:
            box = self.getBoxSize()
        except (ValueError, AttributeError):
            return []
        warnings = []
        from disca_engine.settings import smallest_box
        need = smallest_box()
        if box < need:
            warnings.append('DISCA clustering (every preset) needs boxes of at least %d voxels; '
                            '%d is too small for it.' % (need, box))
        particle = self.particleDiameter()
        outSr = self._outputSamplingRate()
        if particle and outSr and box * outSr < particle[0]:
            warnings.append('The box (%d voxels = %.0f Å) is smaller than the particle '
                            '(%.0f Å, %s): the subtomograms will cut the particles. Use the '
                            'box size wizard.' % (box, box * outSr, particle[0], particle[1]))
        return warnings

    def _summary(self):
        out = getattr(self, self._possibleOutputs.subtomograms.name, None)
        if out is None:
            return ['Output not ready yet.']
        lines = ['%d subtomograms of %d^3 voxels at %.3f Å/voxel (binning %d), normalised to '
                 'zero mean and unit variance.'
                 % (out.getSize(), self.getBoxSize(), out.getSamplingRate(),
                    self.binning.get())]
        if self.borderBoxes.get() != BORDER_SKIP:
            lines.append('Boxes crossing the border were padded (%s fill); padded '
                         'subtomograms carry %s > 0.'
                         % (BORDER_CHOICES[self.borderBoxes.get()], PADDED_ATTR))
        if self.nSkipped.get():
            lines.append('%d coordinates skipped: their box crosses the tomogram border (%s).'
                         % (self.nSkipped.get(), self.skippedPerTomo.get()))
        return lines

    def _methods(self):
        out = getattr(self, self._possibleOutputs.subtomograms.name, None)
        if out is None:
            return []
        return ['%d subtomograms (%d^3 voxels, %.2f Å/voxel) were extracted and each normalised '
                'to zero mean and unit variance [Zeng2023].'
                % (out.getSize(), self.getBoxSize(), out.getSamplingRate())]

    def _citations(self):
        return ['Zeng2023']

    # --------------------------- UTILS functions ----------------------------
    def getBoxSize(self):
        """Box in output voxels: the form's number, or (auto) the coordinates' box."""
        box = parseOptional(self.boxSize.get(), int, 'Box size', autoBelow=0, minimum=2)
        return int(box) if box is not None else self.boxFromCoordinates()

    def _outputSamplingRate(self):
        tomos = self.getTomograms() if self.inputCoordinates.get() is not None else None
        sr = tomos.getSamplingRate() if tomos is not None else None
        return sr * (self.binning.get() or 1) if sr else None

    def boxFromCoordinates(self):
        """The coordinates' box size (in their voxels) in output voxels, rounded to even;
        DEFAULT_BOX when they have none."""
        coords = self.inputCoordinates.get()
        outSr = self._outputSamplingRate()
        if coords is None or not coords.getBoxSize() or not coords.getSamplingRate() or not outSr:
            return C.DEFAULT_BOX
        box = int(round(coords.getBoxSize() * coords.getSamplingRate() / outSr))
        return max(2, box + box % 2)

    def boxFromDiameter(self, diameterA):
        return suggestedBoxSize(diameterA, self._outputSamplingRate())

    def particleDiameter(self):
        """(diameter in Å, where it comes from) of the particles, or None: the picking run's
        diameter when it has one, else the coordinates' box / BOX_DIAMETER_FACTOR."""
        pointer = self.inputCoordinates
        picker = pointer.getObjValue() if pointer.hasExtended() else None
        diameter = getattr(picker, 'particleDiameter', None)
        if diameter is not None and diameter.get():
            return float(diameter.get()), "the picking run's particle diameter"
        coords = pointer.get()
        if coords is not None and coords.getBoxSize() and coords.getSamplingRate():
            return (coords.getBoxSize() * coords.getSamplingRate() / C.BOX_DIAMETER_FACTOR,
                    "the coordinates' box / %g" % C.BOX_DIAMETER_FACTOR)
        return None

    def _tomogramsPointer(self):
        if self.tomoSource.get() == SOURCE_OTHER and self.inputTomograms.get() is not None:
            return self.inputTomograms
        return self.inputCoordinates.get()._precedentsPointer

    def getTomograms(self):
        if self.tomoSource.get() == SOURCE_OTHER and self.inputTomograms.get() is not None:
            return self.inputTomograms.get()
        return self.inputCoordinates.get().getPrecedents()

    def _coordsStar(self, key):
        return self._getExtraPath(key, 'coords.star')

    def _particlesStar(self, key):
        return self._getExtraPath(key, 'particles.star')

    def _tomogramsToExtract(self):
        """(key, file, sampling) of each tomogram that has coordinates."""
        coordIds = set(self.inputCoordinates.get().getTSIds())
        tomos = self.getTomograms()
        return [(itemKey(t), os.path.abspath(t.getFileName()), float(tomos.getSamplingRate()))
                for t in tomos.iterItems() if t.getTsId() in coordIds]

    def _coordinatesPerTomogram(self):
        """tsId -> [(coordinate id, (x, y, z) in the extraction tomogram's voxels, score)]."""
        coords = self.inputCoordinates.get()
        factor = coords.getSamplingRate() / self.getTomograms().getSamplingRate()
        perTomo = {}
        for coord in coords.iterCoordinates():
            xyz = coord.getPosition(BOTTOM_LEFT_CORNER)
            if factor != 1:
                xyz = tuple(rescaleVoxelCentres(xyz, factor))
            perTomo.setdefault(coord.getTomoId(), []).append(
                (coord.getObjId(), xyz, coord.getScore() or 0.0))
        return perTomo

    def _itemsOf(self, tomo, key, table, subtomoSr):
        """(Coordinate3D, SubTomogram) for every extracted row of particles.star."""
        from disca_engine.io.star import read_star
        if not len(table):  # every box of this tomogram crossed its border
            return
        source = read_star(self._coordsStar(key))
        ids = source.column(ITEM_ID, int)
        scores = source.column(SCORE, float)
        rows = table.column(PICK_INDEX, int)
        xs, ys, zs = (table.column('rlnCoordinate%s' % a, float) for a in 'XYZ')
        names = table[IMAGE]
        padded = (table.column('discaPaddedFraction', float)
                  if 'discaPaddedFraction' in table else None)
        tomoFile = tomo.getFileName()
        for i, (row, x, y, z, name) in enumerate(zip(rows, xs, ys, zs, names)):
            coord = Coordinate3D()
            coord.setVolume(tomo)
            coord.setPosition(x, y, z, BOTTOM_LEFT_CORNER)
            coord.setScore(scores[row])
            coord.setGroupId(0)
            subtomo = SubTomogram()
            subtomo.setFileName(self._getExtraPath(key, name))
            subtomo.setSamplingRate(subtomoSr)
            subtomo.setVolName(tomoFile)
            subtomo.setVolId(tomo.getObjId())
            # boxes are centred on their picks: identity alignment, which RELION's
            # writers (reliontomo) expect on every subtomogram
            subtomo.setTransform(None)
            if tomo.getAcquisition() is not None:
                subtomo.setAcquisition(tomo.getAcquisition())
            # keep the input coordinate's id to trace each subtomogram to its pick
            subtomo.inputCoordId = Integer(ids[row])
            if padded is not None:
                setattr(subtomo, PADDED_ATTR, Float(padded[i]))
            yield coord, subtomo
