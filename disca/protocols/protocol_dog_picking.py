# -*- coding: utf-8 -*-
"""Template-free Difference-of-Gaussians picking of tomograms (DISCA's picker).

The engine's numpy/scipy picker runs inside this protocol's process (no TensorFlow env
needed). Each tomogram is one step (parallel with threads); its picks go atomically to
``extra/<tsId>_coords.star`` so a resumed run skips finished tomograms. The output set is
built only in the final step.
"""
import os
from enum import Enum

from pyworkflow import BETA
import pyworkflow.protocol.params as params
from pyworkflow.protocol import STEPS_PARALLEL
from pyworkflow.object import String
from pyworkflow.utils import Message

from tomo.constants import BOTTOM_LEFT_CORNER
from tomo.objects import Coordinate3D, SetOfCoordinates3D
from tomo.protocols import ProtTomoPicking

from disca_engine.contract import SCORE

from .. import constants as C
from .form_values import parseOptional
from .picking_utils import (diameterWarnings, setName, AUTO_BORDER, AUTO_BOX, AUTO_MIN_DISTANCE, AUTO_THRESHOLD, NO_LIMIT,
                            MIN_DISTANCE_PER_DIAMETER, checkTomogramSet, engineError, itemKey,
                            pickingDefaults, suggestedBoxSize, workersPerStep)


class DiscaPickOutputs(Enum):
    coordinates = SetOfCoordinates3D


class DiscaProtDogPicking(ProtTomoPicking):
    """Template-free particle picking with a Difference of Gaussians (DoG), as used by
    DISCA (Zeng et al. 2023).

    The tomogram is blurred with two Gaussians (sigma1 from the particle radius, sigma2 =
    ratio x sigma1) and their difference is searched for local maxima (dark or bright
    blobs of the particle size). Peaks closer than the minimum distance keep only the
    strongest. DoG deliberately over-picks (noise, membranes, gold); DISCA clustering then
    sorts the picks into structurally homogeneous groups.
    """
    _label = 'DoG picking'  # Scipion prepends the plugin name: 'disca - DoG picking'
    _devStatus = BETA
    _possibleOutputs = DiscaPickOutputs
    stepsExecutionMode = STEPS_PARALLEL

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.summaryVar = String()

    @classmethod
    def validateInstallation(cls):
        # Picking runs in Scipion's process with numpy/scipy: no engine env needed.
        return []

    # --------------------------- DEFINE param functions ---------------------
    def _defineParams(self, form):
        super()._defineParams(form)
        form.addParam('particleDiameter', params.FloatParam, default=250.0,
                      validators=[params.Positive],
                      label='Particle diameter (Å)', important=True,
                      help='Approximate diameter of the particles to pick, in Angstrom. '
                           'The Gaussian widths, the minimum distance, the border and the '
                           'default box size follow from it (sigma1 = radius/sqrt(3)).')
        form.addParam('inputMasks', params.PointerParam, pointerClass='SetOfTomoMasks',
                      allowsNull=True, label='Masks (optional)',
                      help='Binary masks (e.g. the lamella or cytoplasm, without gold beads '
                           'and carbon) matched to the tomograms by tsId, with the same '
                           'dimensions. Only peaks inside the mask (value > 0.5) are kept and '
                           'the automatic threshold uses only voxels inside it.')
        form.addParam('contrast', params.EnumParam, choices=C.CONTRAST_CHOICES,
                      default=C.CONTRAST_DARK, display=params.EnumParam.DISPLAY_HLIST,
                      label='Particle contrast',
                      help='dark: particles darker than the background (raw cryo-ET '
                           'tomograms). bright: particles brighter (contrast-inverted '
                           'tomograms).')
        form.addParam('thresholdMode', params.EnumParam, choices=C.THRESHOLD_CHOICES,
                      default=C.THRESHOLD_AUTO, display=params.EnumParam.DISPLAY_HLIST,
                      label='Threshold',
                      help='automatic: keep peaks more than N robust standard deviations '
                           'above the background of the DoG response (comparable between '
                           'tomograms). manual: an absolute DoG value (see the preview '
                           'wizard for the values of your data).')
        form.addParam('thresholdSigma', params.FloatParam, default=3.0,
                      condition='thresholdMode == %d' % C.THRESHOLD_AUTO,
                      label='Threshold (sigmas above background)',
                      help='Lower picks more (DoG is meant to over-pick; DISCA sorts the '
                           'picks later). Typical 2-4.')
        form.addParam('threshold', params.StringParam, default=AUTO_THRESHOLD,
                      condition='thresholdMode == %d' % C.THRESHOLD_MANUAL,
                      label='Threshold (absolute DoG value)',
                      help='Peaks of the DoG response below this value are dropped. Until you '
                           'give a number it is the automatic threshold (median + N robust '
                           'sigmas above). The preview wizard shows that value for your '
                           'tomogram and copies the one you choose here.')
        form.addParam('minDistance', params.StringParam, default=AUTO_MIN_DISTANCE,
                      label='Minimum distance (Å)',
                      help='Of two peaks closer than this, only the stronger is kept. '
                           'auto: %g x the particle diameter (touching particles both '
                           'survive). Lower it for crowded samples.' % MIN_DISTANCE_PER_DIAMETER)
        form.addParam('maxPicks', params.StringParam, default=NO_LIMIT,
                      label='Maximum picks per tomogram',
                      help='Keep at most this many picks (highest scores) per tomogram, or '
                           '"no limit".')
        form.addParam('border', params.StringParam, default=AUTO_BORDER,
                      label='Border exclusion (Å)',
                      help='No picks closer than this to the tomogram faces. auto: the '
                           'particle radius.')
        form.addParam('boxSize', params.StringParam, default=AUTO_BOX,
                      label='Box size (voxels)',
                      help='Box size stored with the coordinates (at the tomograms\' '
                           'sampling). auto: %.1f x the particle diameter rounded up to an '
                           'even number, at least %d; it follows the diameter. The wizard '
                           'writes the number.' % (C.BOX_DIAMETER_FACTOR, C.MIN_BOX))
        form.addParam('sigmaRatio', params.FloatParam, default=1.1,
                      expertLevel=params.LEVEL_ADVANCED,
                      validators=[params.GT(1.0)],
                      label='Sigma ratio (sigma2 / sigma1)',
                      help='Width ratio of the two Gaussians. 1.1 (DISCA) gives a narrow '
                           'band-pass centred on the particle size.')
        form.addParam('binning', params.IntParam, default=1,
                      expertLevel=params.LEVEL_ADVANCED,
                      validators=[params.GE(1)],
                      label='Binning for speed',
                      help='Pick on a tomogram block-averaged by this factor (faster, less '
                           'memory). Coordinates are always given in the input tomogram\'s '
                           'voxels.')
        form.addParallelSection(threads=4, mpi=0)

    # --------------------------- INSERT steps functions ---------------------
    def _insertAllSteps(self):
        stepIds = []
        masks = self._masksByTsId()
        for tomo in self.inputTomograms.get().iterItems():
            key = itemKey(tomo)
            stepIds.append(self._insertFunctionStep(
                self.pickStep, key, os.path.abspath(tomo.getFileName()),
                float(tomo.getSamplingRate()), masks.get(tomo.getTsId()),
                prerequisites=[]))
        self._insertFunctionStep(self.createOutputStep, prerequisites=stepIds)

    # --------------------------- STEPS functions ----------------------------
    def coordsFile(self, key):
        return self._getExtraPath('%s_coords.star' % key)

    def pickStep(self, key, tomoFile, samplingRate, maskFile=None):
        from disca_engine.errors import EngineError
        from disca_engine.picking import pick_file
        out = self.coordsFile(key)
        if os.path.exists(out):  # written atomically: complete from a previous run
            self.info('%s: picks already done (%s), skipping' % (key, out))
            return
        try:
            result = pick_file(tomoFile, out, voxel_A=samplingRate, tomo_name=key,
                               mask=maskFile, workers=self._workersPerStep(),
                               **self._pickKwargs())
        except EngineError as exc:
            raise engineError('tomogram %s (%s)' % (key, tomoFile), exc)
        self.info('%s: %d picks (threshold %.4g)' % (key, len(result), result.threshold))

    def createOutputStep(self):
        from disca_engine.io.star import read_star
        tomos = self.inputTomograms.get()
        coords = self._createSetOfCoordinates3D(tomos)
        sr = tomos.getSamplingRate()
        coords.setSamplingRate(sr)
        coords.setBoxSize(self.getBoxSize(sr))
        counts = {}
        for tomo in tomos.iterItems():
            key = itemKey(tomo)
            table = read_star(self.coordsFile(key))
            counts[key] = len(table)
            if not len(table):
                continue
            xs, ys, zs = (table.column('rlnCoordinate%s' % a, float) for a in 'XYZ')
            scores = table.column(SCORE, float)
            for x, y, z, s in zip(xs, ys, zs, scores):
                coord = Coordinate3D()
                coord.setVolume(tomo)  # before setPosition: the origin comes from it
                # The engine's 0-based voxel centres are BOTTOM_LEFT_CORNER positions.
                coord.setPosition(x, y, z, BOTTOM_LEFT_CORNER)
                coord.setScore(s)
                coord.setGroupId(0)
                coords.append(coord)
        total = sum(counts.values())
        self.summaryVar.set(', '.join('%s: %d' % kv for kv in counts.items()))
        self._store(self.summaryVar)
        if total == 0:
            raise Exception('No particles were picked in any tomogram. Lower the threshold '
                            '(or check the particle diameter and the contrast) and run again.')
        self._defineOutputs(**{self._possibleOutputs.coordinates.name: coords})
        self._defineSourceRelation(self.inputTomograms, coords)

    # --------------------------- INFO functions -----------------------------
    def _validate(self):
        errors = []
        tomos = self.inputTomograms.get()
        if tomos is None:
            return errors
        diam = self.particleDiameter.get() or 0
        errors += checkTomogramSet(tomos, minSizeA=diam, what='particle diameter')
        if errors:
            return errors
        try:
            self._pickKwargs()
            sr = tomos.getSamplingRate()
            box = self.getBoxSize(sr)
        except ValueError as exc:
            return [str(exc)]
        dims = [tomo.getDim() for tomo in tomos.iterItems()]
        smallest = min(min(d) for d in dims if d)
        if box > smallest:
            errors.append('Box size %d voxels is larger than the smallest tomogram dimension '
                          '(%d voxels): lower the box size.' % (box, smallest))
        errors += self._validateMasks(tomos)
        if self.thresholdMode.get() == C.THRESHOLD_AUTO and self.thresholdSigma.get() is None:
            errors.append('Give the threshold in sigmas above the background.')
        return errors

    def _warnings(self):
        tomos = self.inputTomograms.get()
        if tomos is None or not tomos.getSamplingRate() or not self.particleDiameter.get():
            return []
        from disca_engine.picking.pipeline import MIN_SIGMA_VOXELS, smallest_resolved_diameter_vox
        warnings = []
        across = self.particleDiameter.get() / (tomos.getSamplingRate() * (self.binning.get() or 1))
        if across < smallest_resolved_diameter_vox():
            warnings.append('Particles are only %.1f picking voxels across: the DoG width is held '
                            'at %g voxels to stay above the noise, so small particles are picked '
                            'less well. Use less binning (or tomograms of finer sampling).'
                            % (across, MIN_SIGMA_VOXELS))
        warnings += diameterWarnings(self.particleDiameter.get(), tomos)
        return warnings

    def _summary(self):
        summary = []
        tomos = self.inputTomograms.get()
        if tomos is not None and tomos.getSamplingRate():
            summary.append('Particle diameter %g Å, %s contrast, box %d voxels.'
                           % (self.particleDiameter.get(),
                              C.CONTRAST_CHOICES[self.contrast.get()],
                              self.getBoxSize(tomos.getSamplingRate())))
        out = getattr(self, self._possibleOutputs.coordinates.name, None)
        if out is not None:
            summary.append('%d coordinates picked from %d tomograms.'
                           % (out.getSize(), tomos.getSize()))
            if self.summaryVar.get():
                summary.append('Picks per tomogram: %s' % self.summaryVar.get())
        else:
            summary.append(Message.TEXT_NO_OUTPUT_CO)
        return summary

    def _methods(self):
        out = getattr(self, self._possibleOutputs.coordinates.name, None)
        if out is None:
            return []
        kw = self._pickKwargs()
        thr = ('an absolute value of %g' % kw['threshold'] if 'threshold' in kw else
               '%g robust standard deviations above the background' % kw['threshold_sigma'])
        return ['%d particles were picked template-free from %d tomograms (%s) with a '
                'Difference-of-Gaussians detector [Voss2009] as used by DISCA [Zeng2023] for '
                'particles of %g Å diameter (%s contrast, sigma ratio %g, threshold %s).'
                % (out.getSize(), self.inputTomograms.get().getSize(),
                   setName(self.inputTomograms),
                   self.particleDiameter.get(), C.CONTRAST_CHOICES[self.contrast.get()],
                   self.sigmaRatio.get(), thr)]

    def _citations(self):
        return ['Voss2009', 'Zeng2023']

    # --------------------------- UTILS functions ----------------------------
    def getBoxSize(self, samplingRate):
        box = parseOptional(self.boxSize.get(), int, 'Box size', autoBelow=0, minimum=2)
        if box is not None:
            return int(box)
        return suggestedBoxSize(self.particleDiameter.get(), samplingRate)

    def _masksByTsId(self):
        masks = self.inputMasks.get()
        if masks is None:
            return {}
        return {m.getTsId(): os.path.abspath(m.getFileName()) for m in masks.iterItems()}

    def _validateMasks(self, tomos):
        masks = self.inputMasks.get()
        if masks is None:
            return []
        dims = {m.getTsId(): m.getDim() for m in masks.iterItems()}
        errors = []
        for tomo in tomos.iterItems():
            tsId = tomo.getTsId()
            if tsId not in dims:
                errors.append('No mask for tomogram %s: give a mask for every tomogram (same '
                              'tsId) or no masks.' % tsId)
            elif dims[tsId] and tomo.getDim() and tuple(dims[tsId]) != tuple(tomo.getDim()):
                errors.append('The mask of tomogram %s is %s voxels but the tomogram is %s: '
                              'use masks made for these tomograms.'
                              % (tsId, dims[tsId], tomo.getDim()))
        return errors

    def _workersPerStep(self):
        return workersPerStep(self.numberOfThreads.get(), self.inputTomograms.get().getSize())

    def _pickKwargs(self):
        """Engine keyword arguments for the current form values."""
        return pickingDefaults(
            diameter=self.particleDiameter.get(), contrast=self.contrast.get(),
            thresholdMode=self.thresholdMode.get(), thresholdSigma=self.thresholdSigma.get(),
            threshold=self.threshold.get(), minDistance=self.minDistance.get(),
            maxPicks=self.maxPicks.get(), border=self.border.get(),
            sigmaRatio=self.sigmaRatio.get(), binning=self.binning.get())
