# -*- coding: utf-8 -*-
"""What the protocols that run the TensorFlow engine share: running it, resuming it, and
turning its finished run folder into Scipion classes."""
import os
import shlex

from pyworkflow.object import Float

from disca_engine.contract import CHECKPOINT_DIR, CLUSTERS_STAR, PARTICLES_STAR

from .cluster_verdicts import reportRows, setClassVerdict
from .conversion import averagePath, checkAllAssigned, readClusters, writeParticlesStar
from .run_summary import readReport

POSTERIOR_ATTR = '_disca_posterior'
ENGINE_DIR = 'disca'  # engine output folder inside the protocol's extra/


class DiscaEngineMixin:
    """Running the engine and turning its output into Scipion classes (shared by cluster
    and classify)."""

    def _engineDir(self, *paths):
        return self._getExtraPath(ENGINE_DIR, *paths)

    def _particlesStar(self):
        return self._getExtraPath(PARTICLES_STAR)

    def convertInputStep(self):
        """The input set as the engine's particles STAR (protocols name it inputSubtomos)."""
        n = writeParticlesStar(self.inputSubtomos.get(), self._particlesStar())
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
        self.runJob(self._engineProgram(), line, env=self._engineEnviron(), numberOfThreads=1)

    def _threadArgs(self):
        threads = int(self.numberOfThreads.get() or 1)
        return ['--threads', str(max(threads, 1))]

    def _restartArgs(self):
        """On "Continue" after an interruption: resume from the engine's checkpoint, or
        replace a partial output folder that has none."""
        if os.path.isdir(self._engineDir(CHECKPOINT_DIR)):
            return ['--resume']
        if os.path.isdir(self._engineDir()) and os.listdir(self._engineDir()):
            return ['--overwrite']
        return []

    def _fillClasses(self, inputPointer, outDir, suffix=''):
        """SetOfClassesSubTomograms from ``outDir/clusters.star`` with averages as representatives
        and, where report.json has them, each cluster's verdict, resolution and reason.

        ``inputPointer``: the protocol's pointer to the input set (Scipion warns "Direct
        pointers to objects should be avoided" when the set itself is given)."""
        inputSubtomos = inputPointer.get()
        assignment = readClusters(os.path.join(outDir, CLUSTERS_STAR))
        checkAllAssigned(assignment, [s.getObjId() for s in inputSubtomos.iterItems()])
        sampling = inputSubtomos.getSamplingRate()
        verdicts = reportRows(readReport(outDir))

        def updateItem(item, _row):
            cls, post = assignment[item.getObjId()]
            item.setClassId(cls)
            setattr(item, POSTERIOR_ATTR, Float(post))

        def updateClass(classItem):
            rep = classItem.getRepresentative()
            average = averagePath(outDir, classItem.getObjId())
            if os.path.exists(average):
                rep.setLocation(average)
            rep.setSamplingRate(sampling)
            setClassVerdict(classItem, verdicts.get(classItem.getObjId()))

        classes = self._createSetOfClassesSubTomograms(inputPointer, suffix)
        if inputSubtomos.hasCoordinates3D():
            classes.setCoordinates3D(inputSubtomos.getCoordinates3D(asPointer=True))
        classes.classifyItems(updateItemCallback=updateItem, updateClassCallback=updateClass)
        return classes
