# -*- coding: utf-8 -*-
"""Classify new subtomograms with a trained DISCA run (runs ``disca-engine predict``)."""
import os
from enum import Enum

from pyworkflow import BETA
import pyworkflow.protocol.params as params
from pyworkflow.protocol.constants import STEPS_PARALLEL
from pwem.protocols import EMProtocol
from tomo.objects import SetOfClassesSubTomograms
from tomo.protocols import ProtTomoBase

from disca_engine.io.star import write_star

from .conversion import EngineOutputError, subtomogramsToTable
from .engine_base import DiscaEngineMixin
from .predict_chunks import mergePredictions, planChunks, tomogramNameOf


class DiscaClassifyOutputs(Enum):
    classes = SetOfClassesSubTomograms


class DiscaProtClassify(EMProtocol, ProtTomoBase, DiscaEngineMixin):
    """Assign new subtomograms to the clusters of a finished DISCA clustering run:
    features from its trained network -> its saved PCA -> its Gaussian mixture -> labels.
    Fast (no training): use it to sort a large dataset after clustering a subset, or new
    tomograms of the same sample. The new subtomograms must have the box size and voxel
    size of the training set. Representatives are the averages of the new members.

    The set is classified in independent steps, one per tomogram (or per chunk of a given
    size), that Scipion runs in parallel (threads - 1 at a time) or sends to a queue
    system; a last step merges their outputs.
    """
    _label = 'classify with a trained model'
    _devStatus = BETA
    _possibleOutputs = DiscaClassifyOutputs
    stepsExecutionMode = STEPS_PARALLEL

    def _defineParams(self, form):
        form.addHidden(params.USE_GPU, params.BooleanParam, default=True, label='Use GPU',
                       help='Compute features on the GPU(s) below (CPU otherwise).')
        form.addHidden(params.GPU_LIST, params.StringParam, default='0', label='GPU IDs',
                       help='GPUs to use, e.g. "0".')
        form.addSection(label='Input')
        form.addParam('inputSubtomos', params.PointerParam, pointerClass='SetOfSubTomograms',
                      important=True, label='Subtomograms to classify',
                      help='Same box size, voxel size and normalisation as the training set.')
        form.addParam('clusterRun', params.PointerParam, pointerClass='DiscaProtCluster',
                      important=True, label='Trained DISCA run',
                      help='A finished "DISCA clustering" run; its model, PCA and mixture '
                           'are used unchanged.')
        form.addParam('chunkSize', params.IntParam, default=0, label='Subtomograms per step',
                      validators=[params.GE(0)],
                      help='0: one classification step per tomogram. N > 0: steps of N '
                           'subtomograms each (in input order), e.g. for one huge tomogram. '
                           'Steps run in parallel, (threads - 1) at a time, or each as its '
                           'own job when the queue is used for steps.')
        form.addParallelSection(threads=2, mpi=0)

    # ------------------------------------------------------------------ steps
    def _insertAllSteps(self):
        convert = self._insertFunctionStep(self.convertChunksStep, needsGPU=False)
        predicts = [self._insertFunctionStep(self.predictChunkStep, i, prerequisites=[convert])
                    for i in range(len(self._chunkPlan()))]
        merge = self._insertFunctionStep(self.mergeStep, prerequisites=predicts, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, prerequisites=[merge], needsGPU=False)

    def convertChunksStep(self):
        """One particles STAR per step (rows of the whole set's table, engine contract)."""
        table = subtomogramsToTable(self.inputSubtomos.get())
        plan = self._chunkPlan()
        if sum(len(rows) for rows in plan) != len(table):
            raise EngineOutputError('the input set changed since the steps were planned '
                                              '(%d subtomograms now): restart the protocol' % len(table))
        for i, rows in enumerate(plan):
            write_star(self._chunkStar(i), table.take(rows),
                                 comment='chunk %d of %d of the input set' % (i + 1, len(plan)))
        self.info('Wrote %d subtomograms in %d chunks' % (len(table), len(plan)))

    def predictChunkStep(self, chunk):
        args = ['predict', '--model', self._modelDir(), '--input', self._chunkStar(chunk),
                '--output', self._chunkDir(chunk), '--overwrite',  # its own folder: a rerun replaces it
                '--threads', str(self._threadsPerStep())]
        self._runEngine(args)

    def mergeStep(self):
        """clusters.star, averages and summary of the whole set from the steps' outputs."""
        chunks = [self._chunkDir(i) for i in range(len(self._chunkPlan()))]
        counts = mergePredictions(chunks, self._engineDir(),
                                            voxelSize=self.inputSubtomos.get().getSamplingRate())
        self.info('Merged %d steps: %d subtomograms in %d classes'
                  % (len(chunks), sum(counts.values()), len(counts)))

    def createOutputStep(self):
        classes = self._fillClasses(self.inputSubtomos, self._engineDir())
        self._defineOutputs(**{DiscaClassifyOutputs.classes.name: classes})
        self._defineSourceRelation(self.inputSubtomos, classes)
        self._defineSourceRelation(self.clusterRun, classes)

    # ------------------------------------------------------------------ chunks
    def _chunkPlan(self):
        """Row indices of each step, computed from the input set (same plan every call)."""
        if not hasattr(self, '_plan'):
            subtomos = self.inputSubtomos.get()
            items = subtomos.iterSubtomos() if hasattr(subtomos, 'iterSubtomos') else subtomos
            names = [tomogramNameOf(s) for s in items]  # same order as the STAR rows
            self._plan = planChunks(names, int(self.chunkSize.get() or 0))
        return self._plan

    def _chunkDir(self, chunk, *paths):
        return self._getExtraPath('chunks', 'chunk_%03d' % chunk, *paths)

    def _chunkStar(self, chunk):
        return self._chunkDir(chunk, 'particles.star')

    def _threadsPerStep(self):
        """The protocol's threads shared by the steps that run at the same time."""
        threads = max(int(self.numberOfThreads.get() or 1), 1)
        concurrent = min(max(threads - 1, 1), len(self._chunkPlan()))
        return max(threads // concurrent, 1) if concurrent > 1 else threads

    def _modelDir(self):
        return os.path.abspath(self.clusterRun.get().getEngineOutputDir())

    def _validate(self):
        errors = []  # a missing engine is reported by validateInstallation
        run = self.clusterRun.get()
        newSet = self.inputSubtomos.get()
        if run is None or newSet is None:
            return errors + ['Select the subtomograms and a trained DISCA run.']
        modelDir = run.getEngineOutputDir()
        if not os.path.isdir(os.path.join(modelDir, 'model')):
            errors.append('The DISCA run %s has no trained model (%s): run it to the end first.'
                          % (run.getObjLabel(), os.path.join(modelDir, 'model')))
            return errors
        trained = run.inputSubtomos.get()
        if trained is not None:
            if tuple(trained.getDim() or ()) != tuple(newSet.getDim() or ()):
                errors.append('Box size %s differs from the training set (%s): re-extract with '
                              'the same box.' % (newSet.getDim(), trained.getDim()))
            a, b = trained.getSamplingRate(), newSet.getSamplingRate()
            if a and b and abs(a - b) > 0.01 * a:
                errors.append('Voxel size %.2f A differs from the training set (%.2f A): '
                              're-extract at the training voxel size.' % (b, a))
        return errors

    def _summary(self):
        if not self.hasAttribute(DiscaClassifyOutputs.classes.name):
            return ['Classification not finished yet.']
        classes = getattr(self, DiscaClassifyOutputs.classes.name)
        sizes = ['%d: %d' % (c.getObjId(), c.getSize()) for c in classes]
        return ['%d subtomograms classified with the model of %s'
                % (self.inputSubtomos.get().getSize(), "'%s'" % self.clusterRun.get().getRunName()),
                'Class sizes: ' + ', '.join(sizes)]

    def _methods(self):
        if not self.hasAttribute(DiscaClassifyOutputs.classes.name):
            return []
        return ['%d subtomograms were assigned to the clusters of a trained DISCA model '
                '[Zeng2023] (features, PCA and Gaussian mixture of run %s).'
                % (self.inputSubtomos.get().getSize(), "'%s'" % self.clusterRun.get().getRunName())]

    def _citations(self):
        return ['Zeng2023']
