# -*- coding: utf-8 -*-
"""DISCA clustering of a SetOfSubTomograms (runs ``disca-engine cluster``)."""
import os
import shlex
from enum import Enum

from pyworkflow import BETA
from pyworkflow.object import Float, Pointer
import pyworkflow.protocol.params as params
from pyworkflow.protocol.constants import LEVEL_ADVANCED
from pwem.protocols import EMProtocol
from tomo.objects import SetOfClassesSubTomograms
from tomo.protocols import ProtTomoBase

from . import engine_io

from disca_engine.clustering.presets import PRESETS as ENGINE_PRESETS

from ..constants import PRESET_CHOICES as PRESETS, PRESET_FAST, PRECISION_CHOICES as PRECISIONS
POSTERIOR_ATTR = '_disca_posterior'
ENGINE_DIR = 'disca'  # engine output folder inside the protocol's extra/


def _presetDefaults(key):
    """'paper X, fast Y' for form help texts, read from the engine's presets."""
    def text(value):
        if isinstance(value, list) and value == list(range(value[0], value[-1] + 1)):
            return '%d:%d' % (value[0], value[-1])
        return ','.join(map(str, value)) if isinstance(value, list) else str(value)
    return ', '.join('%s %s' % (name, text(cfg[key])) for name, cfg in ENGINE_PRESETS.items())


class DiscaClusterOutputs(Enum):
    classes = SetOfClassesSubTomograms


class DiscaEngineMixin:
    """Running the engine and turning its output into Scipion classes (shared by cluster
    and classify)."""

    def _engineDir(self, *paths):
        return self._getExtraPath(ENGINE_DIR, *paths)

    def _particlesStar(self):
        return self._getExtraPath('particles.star')

    def convertInputStep(self):
        """The input set as the engine's particles STAR (protocols name it inputSubtomos)."""
        n = engine_io.writeParticlesStar(self.inputSubtomos.get(), self._particlesStar())
        self.info('Wrote %d subtomograms to %s' % (n, self._particlesStar()))

    def _engineEnviron(self):
        from disca import Plugin
        env = Plugin.getEnviron()
        if not self._useGpus():
            env['CUDA_VISIBLE_DEVICES'] = '-1'  # TensorFlow then ignores every GPU
        return env

    def _useGpus(self):
        return self.usesGpu() and bool(self.getGpuList())

    def _engineProgram(self):
        from disca import Plugin
        program = Plugin.getEngineProgram()
        if self._useGpus():
            # Scipion's executor replaces %(GPU)s by this run's GPU ids (comma separated here),
            # so the engine sees exactly the GPUs the user chose, renumbered from 0.
            program = 'CUDA_VISIBLE_DEVICES=%(GPU)s ' + program
        return program

    def _runEngine(self, args):
        # quoted for the shell (run names and labels have spaces); with GPUs Scipion fills in
        # %(GPU)s with the % operator, so a literal % must be doubled
        line = ' '.join(shlex.quote(a) for a in args)
        if self._useGpus():
            line = line.replace('%', '%%')
        self.runJob(self._engineProgram(), line, env=self._engineEnviron(),
                    numberOfThreads=1)

    def _threadArgs(self):
        threads = int(self.numberOfThreads.get() or 1)
        return ['--threads', str(max(threads, 1))]

    def _restartArgs(self):
        """On "Continue" after an interruption: resume from the engine's checkpoint, or
        replace a partial output folder that has none."""
        if os.path.isdir(self._engineDir('checkpoint')):
            return ['--resume']
        if os.path.isdir(self._engineDir()) and os.listdir(self._engineDir()):
            return ['--overwrite']
        return []

    def _fillClasses(self, inputSubtomos, outDir, suffix=''):
        """SetOfClassesSubTomograms from ``outDir/clusters.star`` with averages as representatives."""
        assignment = engine_io.readClusters(os.path.join(outDir, engine_io.CLUSTERS_STAR))
        engine_io.checkAllAssigned(assignment, [s.getObjId() for s in inputSubtomos.iterItems()])
        sampling = inputSubtomos.getSamplingRate()

        def updateItem(item, _row):
            cls, post = assignment[item.getObjId()]
            item.setClassId(cls)
            setattr(item, POSTERIOR_ATTR, Float(post))

        def updateClass(classItem):
            rep = classItem.getRepresentative()
            average = engine_io.averagePath(outDir, classItem.getObjId())
            if os.path.exists(average):
                rep.setLocation(average)
            rep.setSamplingRate(sampling)

        classes = self._createSetOfClassesSubTomograms(inputSubtomos, suffix)
        if inputSubtomos.hasCoordinates3D():
            classes.setCoordinates3D(inputSubtomos.getCoordinates3D(asPointer=True))
        classes.classifyItems(updateItemCallback=updateItem, updateClassCallback=updateClass)
        return classes


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
        form.addParam('preset', params.EnumParam, choices=PRESETS, default=PRESET_FAST,
                      label='Preset',
                      help='fast: small network and a training schedule that works on CPUs '
                           'and small sets (hundreds to a few thousand subtomograms).\n'
                           'paper: the network and schedule published by Zeng et al. 2023 '
                           '(YOPO, 10 blocks, lr 1e-5); needs a GPU and >= 21^3 boxes.')
        form.addParam('kRange', params.StringParam, default='',
                      label='Candidate numbers of clusters (K)',
                      help='Range LOW:HIGH (e.g. 2:20) or list (e.g. 5,10,20). BIC picks '
                           'the best K among them each iteration. Empty: preset default '
                           '(%s). Each cluster needs at least 5 members.' % _presetDefaults('k_range'))
        form.addParam('maxIterations', params.IntParam, default=0,
                      validators=[params.GE(0)],
                      label='Maximum iterations',
                      help='0: preset default (%s). The loop also stops when K and 99%% of the '
                           'labels are stable for 3 iterations.' % _presetDefaults('max_iterations'))
        form.addParam('restarts', params.IntParam, default=1, validators=[params.GE(1)],
                      label='Random restarts',
                      help='Independent runs with different seeds; the one with the lowest '
                           'Davies-Bouldin index is kept.')
        form.addParam('seed', params.IntParam, default=0, label='Random seed',
                      help='Same seed and data give the same clusters (on the same hardware).')

        form.addSection(label='Advanced')
        form.addParam('pcaComponents', params.IntParam, default=0,
                      validators=[params.GE(0)], expertLevel=LEVEL_ADVANCED,
                      label='PCA components',
                      help='Feature dimensions kept for the mixtures. 0: preset default '
                           '(%s; the fast preset caps it at N/%d).'
                           % (_presetDefaults('pca_components'),
                              ENGINE_PRESETS['fast']['pca_per_subtomograms']))
        form.addParam('batchSize', params.IntParam, default=0, validators=[params.GE(0)],
                      expertLevel=LEVEL_ADVANCED, label='Batch size',
                      help='0: preset default (%s). Lower it if the GPU runs out of '
                           'memory.' % _presetDefaults('batch_size'))
        form.addParam('epochsPerIteration', params.IntParam, default=0,
                      validators=[params.GE(0)], expertLevel=LEVEL_ADVANCED,
                      label='Epochs per iteration',
                      help='0: preset default (%s).' % _presetDefaults('epochs_per_iteration'))
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
        inputSubtomos = self.inputSubtomos.get()
        classes = self._fillClasses(inputSubtomos, self._engineDir())
        self._defineOutputs(**{DiscaClusterOutputs.classes.name: classes})
        self._defineSourceRelation(self.inputSubtomos, classes)

    # -------------------------- UTILS functions -----------------------------
    def getPresetName(self):
        return PRESETS[self.preset.get()]

    def getEngineOutputDir(self):
        """Folder with clusters.star, report.json, model/, features.npy, report/ and plots/."""
        return self._engineDir()

    def getReport(self):
        return engine_io.readReport(self._engineDir())

    def _clusterArgs(self):
        args = ['cluster', '--input', self._particlesStar(), '--output', self._engineDir(),
                '--preset', self.getPresetName(), '--seed', str(self.seed.get()),
                '--restarts', str(self.restarts.get()),
                '--precision', PRECISIONS[self.precision.get()]]
        if self.kRange.get():
            args += ['--k-range', engine_io.kRangeArgument(self.kRange.get())]
        optional = [('--max-iterations', self.maxIterations), ('--pca-components', self.pcaComponents),
                    ('--batch-size', self.batchSize), ('--epochs-per-iteration', self.epochsPerIteration)]
        args += [item for flag, p in optional if p.get() for item in (flag, str(p.get()))]
        args += self._threadArgs()
        args += ['--name', self.getRunName(), '--input-label', self._inputLabel()]
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

    def _resolvedSettings(self):
        from disca_engine.clustering import presets
        overrides = {'k_range': self.kRange.get() or None}
        return presets.resolve(self.getPresetName(), **overrides)

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
        except Exception as exc:  # EngineError: bad K range text
            return errors + [str(exc)]
        errors += self._validateBox(inputSet, cfg)
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
        from disca_engine.clustering import presets
        try:
            presets.check_box(cfg, dims[0])
        except Exception as exc:
            return [str(exc)]
        return []

    @staticmethod
    def _validateSize(inputSet, cfg):
        from disca_engine.clustering import presets
        try:
            presets.check_k_range(cfg, inputSet.getSize())
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
        lines = engine_io.reportSummary(report)
        html = os.path.join(self._engineDir(), 'report', 'index.html')
        if os.path.exists(html):
            lines.append('Report (Analyze Results): %s' % html)
        return lines

    def _progressLines(self):
        """The engine's last iteration line from the run log (one line per iteration)."""
        try:
            with open(self.getLogPaths()[0], errors='replace') as fh:
                last = engine_io.lastIteration(fh.read())
        except (OSError, IndexError):
            return []
        return ['Last iteration: %s' % last] if last else []

    def _methods(self):
        report = self.getReport()
        if not report:
            return []
        inputSet = self.inputSubtomos.get()
        sizes = report.get('cluster_sizes') or []
        return ['%d subtomograms%s were sorted with DISCA [Zeng2023] (%s preset, candidate K %s, '
                '%d restart(s)) into %s clusters (sizes %s); the iteration with the lowest '
                'distortion-based Davies-Bouldin index (%s, iteration %s) was kept.'
                % (report.get('n_particles', 0),
                   ' from %s' % self.getObjectTag('inputSubtomos') if inputSet else '',
                   report.get('preset'), self._kText(report), len(report.get('restarts') or [1]),
                   report.get('k'), ', '.join(map(str, sizes)), engine_io._fmt(report.get('ddbi')),
                   report.get('chosen_iteration'))]

    @staticmethod
    def _kText(report):
        ks = (report.get('config') or {}).get('k_range') or []
        return '%s-%s' % (min(ks), max(ks)) if ks else '?'

    def _citations(self):
        return ['Zeng2023']
