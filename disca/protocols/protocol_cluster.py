# -*- coding: utf-8 -*-
"""DISCA clustering of a SetOfSubTomograms (runs ``disca-engine cluster``)."""
import os
from enum import Enum

from pyworkflow import BETA
import pyworkflow.protocol.params as params
from pyworkflow.protocol.constants import LEVEL_ADVANCED
from pwem.protocols import EMProtocol
from tomo.objects import SetOfClassesSubTomograms
from tomo.protocols import ProtTomoBase

from disca_engine import settings as engineSettings
from disca_engine.contract import format_k_range

from ..constants import (PRESET_CHOICES as PRESETS, PRESET_AUTO, PRECISION_CHOICES as PRECISIONS,
                         REST_BY_CHOICES as REST_BY)
from .engine_base import DiscaEngineMixin
from .engine_log import lastIteration
from .form_parsers import kRangeArgument
from .form_values import autoPresetDefault, isAuto, parseOptional
from .picking_utils import setName
from .run_summary import formatNumber, readReport, reportSummary


def _presetDefaults(key):
    """'paper X; fast Y' for form help texts, read from the engine's presets."""
    from .form_values import presetText
    return presetText(engineSettings.preset_values(key))


def _auto(key):
    """What a preset-driven field shows until the user gives a value."""
    return autoPresetDefault(engineSettings.preset_values(key))


def _pcaAuto():
    caps = ['%s %d%s' % (name, method.feature_pca.components,
                         ' (at most N/%d)' % method.feature_pca.per_subtomograms
                         if method.feature_pca.per_subtomograms else '')
            for name, method in engineSettings.PRESETS.items()]
    return 'auto (preset: %s)' % '; '.join(caps)


# Preset-driven fields: (form name, engine flag, engine preset key, label).
PRESET_FIELDS = [('maxIterations', '--max-iterations', 'max_iterations', 'Maximum iterations'),
                 ('pcaComponents', '--pca-components', 'pca_components', 'PCA components'),
                 ('batchSize', '--batch-size', 'batch_size', 'Batch size'),
                 ('epochsPerIteration', '--epochs-per-iteration', 'epochs_per_iteration',
                  'Epochs per iteration')]


class DiscaClusterOutputs(Enum):
    classes = SetOfClassesSubTomograms


class DiscaProtCluster(EMProtocol, ProtTomoBase, DiscaEngineMixin):
    """Unsupervised sorting of subtomograms into structurally homogeneous clusters with DISCA
    (Zeng et al., PNAS 2023): a YOPO 3D CNN learns rotation-invariant features while Gaussian
    mixtures choose the number of clusters K by BIC; labels and network are refined
    iteratively and the iteration with the lowest Davies-Bouldin index is kept.

    Output: classes with the average of each cluster as representative and, per subtomogram,
    the posterior of its class (attribute _disca_posterior). The engine folder (model,
    features, report.html, plots) is kept in extra/disca.
    """
    _label = 'DISCA clustering'
    _devStatus = BETA
    _possibleOutputs = DiscaClusterOutputs

    # -------------------------- DEFINE param functions ----------------------
    def _defineParams(self, form):
        form.addHidden(params.USE_GPU, params.BooleanParam, default=True,
                       label='Use GPU',
                       help='Train and compute features on the GPU(s) below. With No, or '
                            'without a CUDA build of TensorFlow, the engine runs on the CPU '
                            '(use the fast preset and a few thousand subtomograms there).')
        form.addHidden(params.GPU_LIST, params.StringParam, default='0',
                       label='GPU IDs',
                       help='GPUs to use, e.g. "0" or "0 1" (data-parallel training).')

        form.addSection(label='Input')
        form.addParam('inputSubtomos', params.PointerParam, pointerClass='SetOfSubTomograms',
                      important=True, label='Subtomograms',
                      help='Cubic subtomograms (e.g. 24^3 at 13-15 A/voxel), normalised. '
                           'Extract them with "disca - extract subtomograms" after DoG picking.')
        form.addParam('preset', params.EnumParam, choices=PRESETS, default=PRESET_AUTO,
                      label='Preset',
                      help='auto (default): over-split clusters of rotation-invariant '
                           'descriptors, refined by aligning every subtomogram to every '
                           'cluster average (rotations and shifts, missing wedge compensated); '
                           'the number of clusters comes from a merge test (two averages that '
                           'agree as well as two averages of one structure are joined), so no '
                           'K range is needed. The network then learns these classes, so the '
                           'model can classify new data.\n'
                           'fast: the earlier CPU preset (small network, BIC over K 5,10,20).\n'
                           'paper: the network and schedule published by Zeng et al. 2023 '
                           '(YOPO, 10 blocks, lr 1e-5); needs a GPU and >= 21^3 boxes.')
        form.addParam('kRange', params.StringParam, default=_auto('k_range'),
                      label='Candidate numbers of clusters (K)',
                      help='Range LOW:HIGH (e.g. 2:20) or list (e.g. 5,10,20). BIC picks '
                           'the best K among them each iteration. auto: the preset\'s '
                           '(%s). Each cluster needs at least 5 members.' % _presetDefaults('k_range'))
        form.addParam('maxIterations', params.StringParam, default=_auto('max_iterations'),
                      label='Maximum iterations',
                      help='auto: the preset\'s (%s). The loop also stops when K and 99%% of '
                           'the labels are stable for 3 iterations.' % _presetDefaults('max_iterations'))
        form.addParam('restarts', params.IntParam, default=1, validators=[params.GE(1)],
                      label='Random restarts',
                      help='Independent runs with different seeds; the one with the lowest '
                           'Davies-Bouldin index is kept.')
        form.addParam('seed', params.IntParam, default=0, label='Random seed',
                      help='Same seed and data give the same clusters (on the same hardware).')
        form.addParam('initModel', params.PointerParam, pointerClass='DiscaProtCluster',
                      allowsNull=True, label='Start from a trained DISCA run (optional)',
                      help='Fine-tuning: start from the network of a finished DISCA clustering '
                           'run (same preset and box size) instead of a random one, e.g. to '
                           'sort a new dataset of the same sample faster. Empty: a new '
                           'network.')

        form.addParam('particleDiameter', params.StringParam,
                      default='auto (estimated from the data)',
                      condition='preset == %d' % PRESET_AUTO,
                      label='Particle diameter (A)',
                      help='auto preset: the diameter of the soft spherical mask every score, '
                           'average and descriptor of the classification sees the boxes '
                           'through (neighbours and membranes outside it stop deciding a '
                           'class; the boxes are cropped to it, so large boxes cost little '
                           'more). auto: estimated from the mean box and printed in the log; '
                           'with particles of several sizes give the largest one\'s.')
        form.addParam('relabel', params.BooleanParam, default=True,
                      condition='preset == %d' % PRESET_AUTO, expertLevel=LEVEL_ADVANCED,
                      label='Relabel (two views; auto)',
                      help='After the alignment classification, relabel every subtomogram with a '
                           'cross-validated linear discriminant of its rotation-invariant '
                           'descriptors and its scores against every class average. Measured '
                           'better on simulated data it was not tuned on; on data where junk '
                           'picks of many kinds are half the boxes it can pull junk into a '
                           'structure\'s cluster: switch it off to keep the alignment classes.')
        form.addParam('junkSplit', params.BooleanParam, default=True,
                      condition='preset == %d' % PRESET_AUTO, expertLevel=LEVEL_ADVANCED,
                      label='Split junk off classes (auto)',
                      help='Last step: in each class whose members\' scores against the class '
                           'average form two groups, the lower group becomes a class of its own '
                           'when it matches the average little better than a structureless '
                           'volume of the same power spectrum (junk picks that no class took), '
                           'or when its boxes fit that power spectrum clearly less than the '
                           'upper group\'s (empty boxes, membrane patches) while matching the '
                           'average at most half as well. '
                           'No: keep the classes as the previous steps left them.')
        form.addParam('subsample', params.IntParam,
                      default=engineSettings.Alignment().max_n,
                      condition='preset == %d' % PRESET_AUTO, expertLevel=LEVEL_ADVANCED,
                      label='Subsample (auto)',
                      help='Above this many subtomograms the classes are found, and the '
                           'network learns them, on a random subsample of this size; the '
                           'others are then classified as shown below. The alignment grows '
                           'with N times K; the network classifies thousands a minute. '
                           '0: find the classes on all of them.')
        form.addParam('restBy', params.EnumParam, choices=REST_BY,
                      default=REST_BY.index(engineSettings.Rest().by),
                      condition='preset == %d' % PRESET_AUTO, expertLevel=LEVEL_ADVANCED,
                      label='Classify the rest by (auto)',
                      help='Above the subsample: network: the trained network and the '
                           'run\'s mixture (as a saved model classifies new data), with '
                           'alignment to the class references where its posterior is under %g; '
                           'alignment: every one aligned to the references (slower; measured '
                           'less accurate on simulated data; the network\'s answer is kept in '
                           'the report for comparison).'
                           % engineSettings.Rest().unsure)

        form.addSection(label='Advanced')
        form.addParam('pcaComponents', params.StringParam, default=_pcaAuto(),
                      expertLevel=LEVEL_ADVANCED, label='PCA components',
                      help='Feature dimensions kept for the mixtures. auto: the preset\'s '
                           '(%s).' % _pcaAuto()[len('auto (preset: '):-1])
        form.addParam('batchSize', params.StringParam, default=_auto('batch_size'),
                      expertLevel=LEVEL_ADVANCED, label='Batch size',
                      help='auto: the preset\'s (%s). Lower it if the GPU runs out of '
                           'memory.' % _presetDefaults('batch_size'))
        form.addParam('epochsPerIteration', params.StringParam,
                      default=_auto('epochs_per_iteration'),
                      expertLevel=LEVEL_ADVANCED, label='Epochs per iteration',
                      help='auto: the preset\'s (%s).' % _presetDefaults('epochs_per_iteration'))
        form.addParam('precision', params.EnumParam, choices=PRECISIONS, default=0,
                      expertLevel=LEVEL_ADVANCED, label='Precision',
                      help='auto: bfloat16/float16 mixed precision where the hardware is fast '
                           'with it, else float32.')
        form.addParam('writeReport', params.BooleanParam, default=True,
                      label='Write the HTML report',
                      help='extra/disca/report/index.html: BIC and DDBI curves, t-SNE of the '
                           'features per iteration, class montages, re-embedded tomograms. '
                           'Open it with "Analyze results".')
        form.addParam('decoder', params.BooleanParam, default=True, condition='writeReport',
                      expertLevel=LEVEL_ADVANCED, label='Decode cluster centres',
                      help='Train a decoder from features to subtomograms and show each '
                           'cluster centre as a 3D image beside its average (about a minute '
                           'on a CPU).')
        form.addParallelSection(threads=2, mpi=0)

    # -------------------------- INSERT steps functions ----------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.convertInputStep)
        self._insertFunctionStep(self.runClusterStep)
        self._insertFunctionStep(self.createOutputStep)

    # -------------------------- STEPS functions -----------------------------
    def runClusterStep(self):
        self._runEngine(self._clusterArgs())

    def createOutputStep(self):
        classes = self._fillClasses(self.inputSubtomos, self._engineDir())
        self._defineOutputs(**{DiscaClusterOutputs.classes.name: classes})
        self._defineSourceRelation(self.inputSubtomos, classes)

    # -------------------------- UTILS functions -----------------------------
    def getPresetName(self):
        return PRESETS[self.preset.get()]

    def getEngineOutputDir(self):
        """Folder with clusters.star, report.json, model/, features.npy, report/ and plots/."""
        return self._engineDir()

    def getReport(self):
        return readReport(self._engineDir())

    def _stepSwitches(self):
        """Engine flags of the auto preset's own stages where the form differs from the
        engine's defaults: the mask's diameter, the subsample and how the rest is
        classified, the switches that leave out its last steps."""
        if self.preset.get() != PRESET_AUTO:
            return []
        diameter = parseOptional(self.particleDiameter.get(), float, 'Particle diameter',
                                 minimum=1)
        if self.subsample.get() < 0:
            raise ValueError('Subsample %d: give 0 (no subsample) or a number of '
                             'subtomograms' % self.subsample.get())
        subsample, restBy = self.subsample.get(), REST_BY[self.restBy.get()]
        return ((['--particle-diameter-A', '%g' % diameter] if diameter else [])
                + ([] if subsample == engineSettings.Alignment().max_n
                   else ['--subsample', str(subsample)])
                + ([] if restBy == engineSettings.Rest().by else ['--rest-by', restBy])
                + ([] if self.relabel.get() else ['--no-relabel'])
                + ([] if self.junkSplit.get() else ['--no-junk-split']))

    def _clusterArgs(self):
        args = ['cluster', '--input', self._particlesStar(), '--output', self._engineDir(),
                '--preset', self.getPresetName(), '--seed', str(self.seed.get()),
                '--restarts', str(self.restarts.get()),
                '--precision', PRECISIONS[self.precision.get()]]
        if not isAuto(self.kRange.get()):
            args += ['--k-range', kRangeArgument(self.kRange.get())]
        for flag, value in self._presetOverrides():
            args += [flag, str(value)]
        if self.initModel.get() is not None:
            args += ['--init-model', os.path.abspath(self.initModel.get().getEngineOutputDir())]
        args += self._threadArgs()
        args += ['--name', self.getRunName(), '--input-label', self._inputLabel()]
        args += self._stepSwitches()
        if not self.writeReport.get():
            args.append('--no-report')
        elif not self.decoder.get():
            args.append('--no-decoder')
        return args + self._restartArgs()

    def _inputLabel(self):
        """'<output> of <run name>' for the report title (the engine only sees a STAR path)."""
        pointer = self.inputSubtomos
        source = pointer.getObjValue()
        if pointer.hasExtended() and hasattr(source, 'getRunName'):
            return "%s of '%s'" % (pointer.getExtended(), source.getRunName())
        return pointer.get().getNameId() if pointer.get() is not None else 'subtomograms'

    def _presetOverrides(self):
        """(engine flag, value) of the preset-driven fields the user filled in; 0 or less
        (older projects) and 'auto ...' leave the preset's value. ValueError on bad text."""
        out = []
        for name, flag, _, label in PRESET_FIELDS:
            value = parseOptional(getattr(self, name).get(), int, label, autoBelow=0)
            if value is not None:
                out.append((flag, value))
        return out

    def _resolvedSettings(self):
        overrides = {'k_range': None if isAuto(self.kRange.get()) else self.kRange.get()}
        return engineSettings.resolve(self.getPresetName(), **overrides)

    # -------------------------- INFO functions ------------------------------
    def _validate(self):
        # A missing engine environment is reported by validateInstallation (with the install
        # command), which Scipion runs for every protocol of the plugin.
        errors = []
        inputSet = self.inputSubtomos.get()
        if inputSet is None:
            return errors + ['Select the input subtomograms.']
        try:
            cfg = self._resolvedSettings()
            self._presetOverrides()
            self._stepSwitches()
        except Exception as exc:  # EngineError: bad K range text; ValueError: bad number
            return errors + [str(exc)]
        errors += self._validateBox(inputSet, cfg)
        errors += self._validateInitModel(inputSet)
        errors += self._validateSize(inputSet, cfg)
        return errors

    @staticmethod
    def _validateBox(inputSet, cfg):
        dims = inputSet.getDim()
        if not dims:
            return []
        if len(set(dims)) != 1:
            return ['Subtomograms must be cubic for DISCA; these are %s. Re-extract them with '
                    'a cubic box.' % 'x'.join(map(str, dims))]
        try:
            engineSettings.check_box(cfg.method, dims[0])
        except Exception as exc:
            return [str(exc)]
        return []

    def _validateInitModel(self, inputSet):
        run = self.initModel.get()
        if run is None:
            return []
        modelDir = os.path.join(run.getEngineOutputDir(), 'model')
        if not os.path.isdir(modelDir):
            return ['The DISCA run to start from (%s) has no trained model (%s): choose a '
                    'finished run.' % (run.getRunName(), modelDir)]
        trained = run.inputSubtomos.get()
        if trained is not None and tuple(trained.getDim() or ()) != tuple(inputSet.getDim() or ()):
            return ['The DISCA run to start from was trained on boxes of %s, these are %s: '
                    'choose a run with the same box size.' % (trained.getDim(), inputSet.getDim())]
        if run.getPresetName() != self.getPresetName():
            return ['The DISCA run to start from used the %s preset: choose the same preset '
                    '(its network differs).' % run.getPresetName()]
        return []

    @staticmethod
    def _validateSize(inputSet, cfg):
        try:
            engineSettings.check_k_range(cfg, inputSet.getSize())
        except Exception as exc:
            return [str(exc).replace('--k-range', 'the K range')]
        return []

    def _warnings(self):
        inputSet = self.inputSubtomos.get()
        if inputSet is None or self._useGpus() or self.getPresetName() != 'paper':
            return []
        return ['The paper preset without a GPU is slow: one iteration took 12-19 min for '
                '2,000 subtomograms on a 2-core CPU (up to 20 iterations). You have %d '
                'subtomograms. Use a GPU, or the fast preset.' % inputSet.getSize()]

    def _summary(self):
        report = self.getReport()
        if not report:
            return ['Clustering not finished yet.'] + self._progressLines()
        lines = reportSummary(report)
        html = os.path.join(self._engineDir(), 'report', 'index.html')
        if os.path.exists(html):
            lines.append('Report (Analyze Results): %s' % html)
        return lines

    def _progressLines(self):
        """The engine's last iteration line from the run log (one line per iteration)."""
        try:
            with open(self.getLogPaths()[0], errors='replace') as fh:
                last = lastIteration(fh.read())
        except (OSError, IndexError):
            return []
        return ['Last iteration: %s' % last] if last else []

    def _methods(self):
        report = self.getReport()
        if not report:
            return []
        inputSet = self.inputSubtomos.get()
        sizes = report.get('cluster_sizes') or []
        classification = (report.get('settings') or {}).get('classification')
        if classification:
            return [self._autoMethods(report, classification, inputSet, sizes)]
        return ['%d subtomograms%s were sorted with DISCA [Zeng2023] (%s preset, candidate K %s, '
                '%d restart(s)) into %s clusters (sizes %s); the iteration with the lowest '
                'distortion-based Davies-Bouldin index (%s, iteration %s) was kept.'
                % (report.get('n_particles', 0),
                   ' from %s' % setName(self.inputSubtomos) if inputSet else '',
                   report.get('preset'), self._kText(report), len(report.get('restarts') or [1]),
                   report.get('k'), ', '.join(map(str, sizes)), formatNumber(report.get('ddbi')),
                   report.get('chosen_iteration'))]

    def _autoMethods(self, report, classification, inputSet, sizes):
        """Methods text of an auto run: its stages, with this run's mask and settings."""
        first = (report.get('iterations') or [{}])[0].get('classification') or []
        mask = next((h for h in first if h.get('mask')), {})
        maskText = (' seen through a soft spherical mask of %s A diameter (%s)'
                    % (formatNumber(mask.get('diameter_A')),
                       'given' if (classification.get('mask') or {}).get('diameter_A')
                       else 'estimated from the data') if mask.get('diameter_A') else '')
        return ('%d subtomograms%s were sorted with the auto preset of scipion-em-disca%s: '
                'over-split k-means clusters of rotation-invariant descriptors were refined '
                'by multi-reference alignment (%s rotations, shift search, missing-wedge '
                'compensated averages), and two clusters were merged when their aligned '
                'averages agreed as well as averages of one structure would (half-set test, '
                'threshold %s) or when their members, held out, did not prefer their own '
                'cluster (z < %s)%s, giving %s clusters (sizes %s); the DISCA network '
                '[Zeng2023] was then trained on these classes for %s iteration(s).'
                % (report.get('n_particles', 0),
                   ' from %s' % setName(self.inputSubtomos) if inputSet else '', maskText,
                   classification['alignment']['rotations'],
                   classification['merge_test']['threshold'],
                   classification['merge_test']['evidence'],
                   ('; the classes were then relabelled by a cross-validated linear '
                    'discriminant of the descriptors and the alignment scores'
                    if classification.get('relabel') else '')
                   + ('; low-scoring groups that matched their class average little better '
                      'than noise, or whose boxes held less of its power spectrum, were '
                      'split off as classes of their own'
                      if classification.get('junk_split') else ''),
                   report.get('k'), ', '.join(map(str, sizes)),
                   len(report.get('iterations') or []))) + self._restMethods(report)

    @staticmethod
    def _restMethods(report):
        """The sentence on the subtomograms outside the subsample, if there was one."""
        rest = report.get('rest')
        if not rest:
            return ''
        return (' The classes were found, and learnt by the network, on a random subsample '
                'of %d subtomograms; of the other %d, %d were classified by the network and '
                'the run\'s mixture and %d by alignment to the class references%s.'
                % (rest['subsample'], rest['rest'], rest['by_network'], rest['by_alignment'],
                   ' (network posterior under %g)' % rest['unsure']
                   if rest['by'] == 'network' else ''))

    @staticmethod
    def _kText(report):
        ks = (report.get('resolved') or {}).get('k_range') or []
        return format_k_range(ks) if ks else '?'

    def _citations(self):
        return ['Zeng2023']
