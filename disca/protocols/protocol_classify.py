# -*- coding: utf-8 -*-
"""Classify new subtomograms with a trained DISCA run (runs ``disca-engine predict``)."""
import os
from enum import Enum

from pyworkflow import BETA
import pyworkflow.protocol.params as params
from pwem.protocols import EMProtocol
from tomo.objects import SetOfClassesSubTomograms
from tomo.protocols import ProtTomoBase

from . import engine_io
from .protocol_cluster import DiscaEngineMixin


class DiscaClassifyOutputs(Enum):
    classes = SetOfClassesSubTomograms


class DiscaProtClassify(EMProtocol, ProtTomoBase, DiscaEngineMixin):
    """Assign new subtomograms to the clusters of a finished DISCA clustering run:
    features from its trained network -> its saved PCA -> its Gaussian mixture -> labels.
    Fast (no training): use it to sort a large dataset after clustering a subset, or new
    tomograms of the same sample. The new subtomograms must have the box size and voxel
    size of the training set. Representatives are the averages of the new members.
    """
    _label = 'classify with a trained model'
    _devStatus = BETA
    _possibleOutputs = DiscaClassifyOutputs

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
        form.addParallelSection(threads=2, mpi=0)

    def _insertAllSteps(self):
        self._insertFunctionStep(self.convertInputStep)
        self._insertFunctionStep(self.runPredictStep)
        self._insertFunctionStep(self.averagesStep)
        self._insertFunctionStep(self.createOutputStep)

    def runPredictStep(self):
        args = ['predict', '--model', self._modelDir(), '--input', self._particlesStar(),
                '--output', self._engineDir()] + self._threadArgs()
        self._runEngine(args)

    def averagesStep(self):
        """Class averages of the new members (numpy + mrcfile), unless the engine wrote them."""
        outDir = self._engineDir()
        if os.path.isdir(os.path.join(outDir, 'averages')):
            return
        written = engine_io.writeClassAverages(os.path.join(outDir, engine_io.CLUSTERS_STAR), outDir,
                                               voxelSize=self.inputSubtomos.get().getSamplingRate())
        self.info('Wrote %d class averages' % written)

    def createOutputStep(self):
        classes = self._fillClasses(self.inputSubtomos, self._engineDir())
        self._defineOutputs(**{DiscaClassifyOutputs.classes.name: classes})
        self._defineSourceRelation(self.inputSubtomos, classes)
        self._defineSourceRelation(self.clusterRun, classes)

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
