# -*- coding: utf-8 -*-
"""Full chain in Scipion: synthetic tomograms -> import -> DoG picking -> extraction ->
DISCA clustering (real engine, fast preset, tiny; and the default preset once) -> classify
with the trained model ->
export (per cluster and merged), checked as RELION's averaging protocol reads it.

Run:  cd /tmp && python -m pytest --pyargs disca.tests.test_cluster_export
      python -m scipion tests disca.tests.test_cluster_export
The engine program must be installed (bundled env via `scipion installb disca`, or
DISCA_ENGINE=/path/to/disca-engine); the test fails, never skips, when it is missing.
"""
import html
import os
import shutil
import tempfile

import numpy as np
import mrcfile

import pwem
from pyworkflow.tests import BaseTest, setupTestProject
from tomo.constants import BOTTOM_LEFT_CORNER
from tomo.objects import SetOfCoordinates3D, SetOfSubTomograms, SetOfClassesSubTomograms

from disca import Plugin
from disca.constants import PRESET_CHOICES
from disca.protocols import (DiscaProtDogPicking, DiscaProtExtract, DiscaProtCluster,
                             DiscaProtClassify, DiscaProtExport)
from disca.protocols.engine_base import POSTERIOR_ATTR
from disca_engine.io import relion
from disca_engine.io.star import read_star

pwem.Domain.getPlugins()

VOXEL = 14.0
BOX = 24


def _point(param, prot, outputName):
    """Pointer to a protocol's output (extended), as the GUI sets it."""
    param.set(prot)
    param.setExtended(outputName)


class TestDiscaClusterExport(BaseTest):
    """One chain, shared by the tests below (each protocol runs once)."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls._home = Plugin.getVar(Plugin._homeVar)
        errors = Plugin.validateEngine()
        if errors:  # fail loudly: Scipion's runner reports skips as passes
            raise RuntimeError('DISCA engine missing: ' + ' '.join(errors))
        cls.tomos = cls._importTomograms()
        cls.pick = cls._picking()
        cls.extract = cls._extraction()
        cls.cluster = cls._clustering()

    # ------------------------------------------------------------------ chain
    @classmethod
    def _importTomograms(cls):
        from disca.tests.synthetic import SyntheticTomograms
        cls.data = SyntheticTomograms.create(cls)
        return cls.data.tomograms

    @classmethod
    def _picking(cls):
        prot = cls.newProtocol(DiscaProtDogPicking, particleDiameter=cls.data.diameter_A,
                               boxSize=BOX)
        prot.inputTomograms.set(cls.tomos)  # the import's output
        return cls.launchProtocol(prot)

    @classmethod
    def _extraction(cls):
        prot = cls.newProtocol(DiscaProtExtract, boxSize=BOX)
        _point(prot.inputCoordinates, cls.pick, 'coordinates')
        return cls.launchProtocol(prot)

    @classmethod
    def _clustering(cls):
        prot = cls.newProtocol(DiscaProtCluster, preset=PRESET_CHOICES.index('fast'),
                               kRange='2:4', maxIterations=2, epochsPerIteration=1, seed=0,
                               useGpu=False, numberOfThreads=2, decoder=False)
        _point(prot.inputSubtomos, cls.extract, 'subtomograms')
        return cls.launchProtocol(prot)

    @classmethod
    def _export(cls, classNumbers, mode):
        prot = cls.newProtocol(DiscaProtExport, classNumbers=classNumbers, mode=mode)
        _point(prot.inputClasses, cls.cluster, 'classes')
        return prot

    # ------------------------------------------------------------------ checks
    def _subtomos(self):
        return self.extract.subtomograms

    def test_classes(self):
        classes = self.cluster.classes
        subtomos = self._subtomos()
        self.assertIsInstance(classes, SetOfClassesSubTomograms)
        self.assertTrue(classes._coordsPointer.hasValue(), 'classes have no coordinates set')
        report = self.cluster.getReport()
        self.assertEqual(classes.getSize(), report['k'])
        sizes = {c.getObjId(): c.getSize() for c in classes.iterItems()}
        self.assertEqual(sum(sizes.values()), subtomos.getSize())
        self.assertEqual(sorted(sizes.values()), sorted(report['cluster_sizes']))
        for cls in classes.iterItems():
            rep = cls.getRepresentative()
            self.assertTrue(os.path.exists(rep.getFileName()), rep.getFileName())
            self.assertAlmostEqual(rep.getSamplingRate(), subtomos.getSamplingRate(), places=3)
        firstClass = classes.getFirstItem()
        for sub in firstClass.iterSubtomos():
            posterior = getattr(sub, POSTERIOR_ATTR).get()
            self.assertTrue(0.0 < posterior <= 1.0 + 1e-6, posterior)
            self.assertIsNotNone(sub.getCoordinate3D().getVolume(), 'class member lost its tomogram')
        # the engine folder is kept with the protocol
        engineDir = self.cluster.getEngineOutputDir()
        for name in ('clusters.star', 'report.json', 'features.npy', 'model',
                     os.path.join('report', 'index.html')):
            self.assertTrue(os.path.exists(os.path.join(engineDir, name)), name)
        # the report is titled with the run's name and its input, not the folder "disca"
        with open(os.path.join(engineDir, 'report', 'index.html')) as fh:
            page = fh.read()
        title = ("%s: DISCA clustering of %d subtomograms from subtomograms of '%s'"
                 % (self.cluster.getRunName(), subtomos.getSize(), self.extract.getRunName()))
        self.assertIn('<title>%s</title>' % html.escape(title), page)
        summary = '\n'.join(self.cluster.summary())
        self.assertIn('K = %d clusters' % report['k'], summary)
        self.assertIn('DDBI', summary)

    def test_default_preset_runs_every_stage(self):
        """The default (auto) preset through Scipion: every stage runs and is named in the
        log, the report holds the settings of those stages only, the methods text says what
        ran, and the classes cover the input."""
        prot = self.newProtocol(DiscaProtCluster, maxIterations=1, seed=0, useGpu=False,
                                numberOfThreads=2, writeReport=False)
        self.assertEqual(prot.getPresetName(), 'auto')
        _point(prot.inputSubtomos, self.extract, 'subtomograms')
        prot = self.launchProtocol(prot)
        report = prot.getReport()
        settings = report['settings']
        self.assertIn('classification', settings)
        self.assertNotIn('k_by_bic', settings)
        with open(prot.getLogPaths()[0], errors='replace') as fh:
            log = fh.read()
        for stage in ('particle mask', 'rotation-invariant descriptors', 'seed clusters',
                      'alignment round', 'merge test', 'relabel (two views)', 'junk split',
                      'final classes'):
            self.assertIn(stage, log)
        sizes = [c.getSize() for c in prot.classes.iterItems()]
        self.assertEqual(sum(sizes), self._subtomos().getSize())
        self.assertEqual(sorted(sizes), sorted(report['cluster_sizes']))
        text = ' '.join(prot._methods())
        self.assertIn('auto preset', text)
        self.assertIn('1500 rotations', text)
        self.assertIn('relabelled', text)
        self.assertIn('soft spherical mask of', text)

    def test_methods_name_the_inputs(self):
        """Methods text: the input set by name (not an internal id); DoG cited itself."""
        import re
        text = ' '.join(self.cluster._methods())
        self.assertIn("subtomograms of run '%s'" % self.extract.getRunName(), text)
        self.assertIsNone(re.search(r'\d+\.subtomograms\.\d+', text), text)
        pickText = ' '.join(self.pick._methods())
        self.assertIn('[Voss2009]', pickText)
        self.assertIn('Voss2009', self.pick._citations())
        from disca.protocols.picking_utils import setName
        self.assertIn(setName(self.pick.inputTomograms), pickText)  # how the GUI names the set

    def test_particles_star_has_coordinates(self):
        table = read_star(self.cluster._particlesStar())
        self.assertEqual(len(table), self._subtomos().getSize())
        rows = {int(i): n for n, i in enumerate(table['discaItemId'])}
        for sub in self._subtomos().iterSubtomos():  # items are reused: check on the fly
            n = rows[sub.getObjId()]
            coord = sub.getCoordinate3D()
            for key, value in (('rlnCoordinateX', coord.getX(BOTTOM_LEFT_CORNER)),
                               ('rlnCoordinateY', coord.getY(BOTTOM_LEFT_CORNER)),
                               ('rlnCoordinateZ', coord.getZ(BOTTOM_LEFT_CORNER))):
                self.assertAlmostEqual(float(table[key][n]), value, 1)
            self.assertEqual(table['discaTomogramFile'][n],
                             os.path.abspath(coord.getVolume().getFileName()))
            self.assertEqual(table['rlnTomoName'][n], coord.getTomoId())

    def test_validation_messages(self):
        tooMany = self.newProtocol(DiscaProtCluster, kRange='2:500')
        tooMany.inputSubtomos.set(self.extract.subtomograms)
        self.assertTrue(any('K range' in e for e in tooMany.validate()), tooMany.validate())
        paper = self.newProtocol(DiscaProtCluster, preset=PRESET_CHOICES.index('paper'), kRange='2:3')
        paper.inputSubtomos.set(self.extract.subtomograms)
        self.assertEqual(paper.validate(), [])  # 24^3 is enough for the paper network
        badExport = self._export('1,99', 0)
        self.assertTrue(any('99' in e for e in badExport.validate()))
        self.assertTrue(any('not a class number' in e for e in self._export('x', 0).validate()))

    def test_missing_engine_is_reported_with_install_command(self):
        from disca.constants import DISCA_ENGINE
        old = Plugin.getVar(DISCA_ENGINE)
        Plugin._vars[DISCA_ENGINE] = '/nonexistent/disca-engine'  # as if set in the config
        try:
            prot = self.newProtocol(DiscaProtCluster)
            _point(prot.inputSubtomos, self.extract, 'subtomograms')
            text = ' '.join(prot.validate())
            self.assertIn('/nonexistent/disca-engine', text)
            Plugin._vars[DISCA_ENGINE] = ''
            Plugin._vars[Plugin._homeVar] = '/nonexistent/disca-env'
            text = ' '.join(prot.validate())
            self.assertIn(Plugin.getInstallCommandHint(), text)
            # export needs no engine
            self.assertEqual(self._export('all', 1).validate(), [])
        finally:
            Plugin._vars[DISCA_ENGINE] = old
            Plugin._vars[Plugin._homeVar] = self._home

    def test_export_per_cluster(self):
        classes = self.cluster.classes
        numbers = sorted(c.getObjId() for c in classes.iterItems())[:2]
        prot = self.launchProtocol(self._export(','.join(map(str, numbers)), 0))
        subtomos = self._subtomos()
        tomoFiles = {t.getFileName() for t in self.tomos}
        for n in numbers:
            expected = classes[n].getSize()
            subs = getattr(prot, 'subtomograms_class%03d' % n)
            coords = getattr(prot, 'coordinates_class%03d' % n)
            self.assertIsInstance(subs, SetOfSubTomograms)
            self.assertIsInstance(coords, SetOfCoordinates3D)
            self.assertEqual(subs.getSize(), expected)
            self.assertEqual(coords.getSize(), expected)
            self.assertAlmostEqual(subs.getSamplingRate(), subtomos.getSamplingRate(), places=3)
            self.assertEqual(subs.getDim(), subtomos.getDim())
            self.assertTrue(subs.hasAcquisition() or subs.getAcquisition() is not None)
            self.assertAlmostEqual(coords.getSamplingRate(), self.tomos.getSamplingRate(), places=3)
            self.assertEqual(coords.getBoxSize(), BOX)
            self.assertEqual(coords.getPrecedents().getSize(), self.tomos.getSize())
            for coord in coords.iterCoordinates():
                self.assertIn(coord.getVolume().getFileName(), tomoFiles)
            for sub in subs.iterSubtomos():  # subtomogram -> coordinate -> tomogram
                self.assertEqual(sub.getClassId(), n)
                self.assertIn(sub.getCoordinate3D().getVolume().getFileName(), tomoFiles)
            self._checkStar(prot, 'subtomograms_class%03d' % n, subs, {n})
            self._checkRelionAverageInput(subs)
            self._checkRelion5ExtractInput(coords)

    def test_export_merged(self):
        classes = self.cluster.classes
        prot = self.launchProtocol(self._export('all', 1))
        self.assertEqual(prot.subtomograms.getSize(), self._subtomos().getSize())
        self.assertEqual(prot.coordinates.getSize(), self._subtomos().getSize())
        numbers = {c.getObjId() for c in classes.iterItems()}
        self._checkStar(prot, 'subtomograms', prot.subtomograms, numbers)

    def test_relion_reads_the_export(self):
        """relion_reconstruct averages each exported cluster's STAR; the result matches the
        cluster's average (correlation >= 0.95 in the Nyquist band inside the inscribed
        sphere, see tests/engine/test_relion.py for the measurement behind the threshold)."""
        if shutil.which('relion_reconstruct') is None:
            self.skipTest('relion_reconstruct not on PATH (scripts/setup_env.sh installs '
                          "Debian's relion; apt was unreachable?)")
        classes = self.cluster.classes
        numbers = sorted(c.getObjId() for c in classes.iterItems())
        prot = self.launchProtocol(self._export('all', 0))
        workDir = tempfile.mkdtemp(dir=self.outputPath)
        for n in numbers:
            star = prot._getExtraPath('subtomograms_class%03d.star' % n)
            out = relion.reconstruct(star, os.path.join(workDir, 'relion_%03d.mrc' % n))
            with mrcfile.open(out, permissive=True) as m:
                self.assertAlmostEqual(float(m.voxel_size.x), self._subtomos().getSamplingRate(), 2)
                relionAvg = np.asarray(m.data)
            avg = mrcfile.read(classes[n].getRepresentative().getFileName())
            cc = relion.correlation(relionAvg, avg)
            print('cluster %d (%d members): RELION vs DISCA average %.3f (whole band %.3f)'
                  % (n, classes[n].getSize(), cc, relion.correlation(relionAvg, avg, band_limit=False)))
            self.assertGreaterEqual(cc, 0.95, 'cluster %d' % n)
            self._checkRelion5Star(prot, n)

    def _checkRelion5Star(self, prot, n):
        """coordinates_classNNN_relion5.star: picks in A from the tomogram centre."""
        table = read_star(prot._getExtraPath('coordinates_class%03d_relion5.star' % n))
        coords = getattr(prot, 'coordinates_class%03d' % n)
        self.assertEqual(len(table), coords.getSize())
        sRate = coords.getSamplingRate()
        byTomo = {}
        for coord in coords.iterCoordinates():
            x, y, z = coord.getVolume().getDim()
            expected = ((coord.getX(BOTTOM_LEFT_CORNER) - x / 2.0) * sRate,
                        (coord.getY(BOTTOM_LEFT_CORNER) - y / 2.0) * sRate,
                        (coord.getZ(BOTTOM_LEFT_CORNER) - z / 2.0) * sRate)
            byTomo.setdefault(coord.getTomoId(), []).append(expected)
        got = {}
        for row in table.rows():
            got.setdefault(row['rlnTomoName'], []).append(
                tuple(float(row['rlnCenteredCoordinate%sAngst' % a]) for a in 'XYZ'))
        self.assertEqual(sorted(got), sorted(byTomo))
        for tomo in got:
            np.testing.assert_allclose(sorted(got[tomo]), sorted(byTomo[tomo]), atol=0.02 * sRate)

    def test_reliontomo_average_subtomo_on_the_export(self):
        """reliontomo's 'Average subtomo' (its RELION 4 protocol: relion_reconstruct on its own
        RELION 4 STAR, --angpix from the set) on an exported cluster, run by Scipion with
        Debian's RELION 3.1 binaries; its average must match the cluster's.

        reliontomo validates RELIONTOMO_HOME and calls itself RELION 5 when that path or
        RELION_ENV_ACTIVATION ends in 5.0 (the default), which disables this protocol: the
        run is pointed at a relion-4.0 folder whose bin/ is the installed binaries' folder."""
        binary = shutil.which('relion_reconstruct')
        if binary is None:
            self.skipTest('relion_reconstruct not on PATH')
        from reliontomo.protocols.protocol_rec_particle_from_subtomograms import \
            ProtRelionSubTomoReconstructAvg
        classes = self.cluster.classes
        n = max(classes.iterItems(), key=lambda c: c.getSize()).getObjId()
        export = self.launchProtocol(self._export(str(n), 0))
        home = os.path.join(tempfile.mkdtemp(dir=self.outputPath), 'relion-4.0')
        os.makedirs(home)
        os.symlink(os.path.dirname(os.path.realpath(binary)), os.path.join(home, 'bin'))
        relionVars = {'RELIONTOMO_HOME': home, 'RELION_HOME': home, 'RELION_ENV_ACTIVATION': 'true'}
        saved = {k: os.environ.get(k) for k in relionVars}
        os.environ.update(relionVars)  # read by the protocol's own process
        try:
            avg = self.newProtocol(ProtRelionSubTomoReconstructAvg, extraParams='--3d_rot')
            _point(avg.inputSubtomos, export, 'subtomograms_class%03d' % n)
            avg = self.launchProtocol(avg)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        out = avg.average.getFileName()
        cc = relion.correlation(mrcfile.read(out), mrcfile.read(classes[n].getRepresentative().getFileName()))
        print('reliontomo Average subtomo, cluster %d: correlation %.3f' % (n, cc))
        self.assertGreaterEqual(cc, 0.95)

    def test_classify_with_trained_model(self):
        # one predict step per tomogram (2 here), run in parallel by Scipion's thread executor
        # (threads - 1 = 2 at a time), then merged
        prot = self.newProtocol(DiscaProtClassify, useGpu=False, numberOfThreads=3)
        _point(prot.inputSubtomos, self.extract, 'subtomograms')
        prot.clusterRun.set(self.cluster)
        prot = self.launchProtocol(prot)
        steps = [s for s in prot.loadSteps() if s.funcName.get() == 'predictChunkStep']
        self.assertEqual(len(steps), len(self.tomos))
        self.assertTrue(all(s.isFinished() for s in steps))
        # parallel by construction (not by timing, which load can hide): every predict step
        # waits only for the conversion, in a protocol the executor runs with 2 workers
        from pyworkflow.protocol.constants import STEPS_PARALLEL
        self.assertEqual(prot.stepsExecutionMode, STEPS_PARALLEL)
        allSteps = prot.loadSteps()
        convert = [i + 1 for i, s in enumerate(allSteps) if s.funcName.get() == 'convertChunksStep']
        for s in steps:  # prerequisites are 1-based step indexes
            self.assertEqual([int(p) for p in s._prerequisites], convert)
        chunkSizes = [len(read_star(prot._chunkDir(i, 'clusters.star'))) for i in range(len(steps))]
        self.assertEqual(sum(chunkSizes), self._subtomos().getSize())
        self.assertTrue(all(chunkSizes))
        classes = prot.classes
        self.assertEqual(sum(c.getSize() for c in classes.iterItems()), self._subtomos().getSize())
        self.assertLessEqual(classes.getSize(), self.cluster.classes.getSize())
        # same subtomograms through the saved network/PCA/mixture: the training labels back
        trained = {s.getObjId(): c.getObjId() for c in self.cluster.classes.iterItems()
                   for s in c.iterItems()}
        new = {s.getObjId(): c.getObjId() for c in classes.iterItems() for s in c.iterItems()}
        agree = np.mean([trained[i] == new[i] for i in trained])
        self.assertGreaterEqual(agree, 0.95, 'predict disagrees with the trained labels')
        for cls in classes.iterItems():
            with mrcfile.open(cls.getRepresentative().getFileName(), permissive=True) as mrc:
                self.assertEqual(mrc.data.shape, (BOX, BOX, BOX))
                self.assertTrue(np.isfinite(mrc.data).all())

    # ------------------------------------------------------------------ helpers
    def _checkStar(self, prot, name, subs, classNumbers):
        table = read_star(prot._getExtraPath('%s.star' % name))
        self.assertEqual(len(table), subs.getSize())
        for key in ('rlnTomoName', 'rlnCoordinateX', 'rlnCoordinateY', 'rlnCoordinateZ',
                    'rlnImageName', 'rlnClassNumber'):
            self.assertIn(key, table)
        self.assertEqual({int(c) for c in table['rlnClassNumber']}, set(classNumbers))
        self.assertTrue(all(os.path.isfile(p) for p in table['rlnImageName']))
        tsIds = {t.getTsId() for t in self.tomos}
        self.assertTrue(set(table['rlnTomoName']) <= tsIds, (set(table['rlnTomoName']), tsIds))

    def _checkRelionAverageInput(self, subs):
        """reliontomo's 'Average subtomo' takes a SetOfSubTomograms and converts it with the
        RELION 4 tomo writer in its first step (the protocol is offered with RELION 4; under
        RELION 5 it is disabled and coordinates go through RELION 5 extraction instead)."""
        from reliontomo.protocols.protocol_rec_particle_from_subtomograms import \
            ProtRelionSubTomoReconstructAvg
        from reliontomo.convert import createWriterTomo40
        from reliontomo.constants import RELION_40_TOMO_LABELS
        avg = self.newProtocol(ProtRelionSubTomoReconstructAvg)
        pointerClass = avg.getParam('inputSubtomos').pointerClass.get()
        self.assertIn(pointerClass, [c.__name__ for c in type(subs).__mro__])
        avg.inputSubtomos.set(subs)
        self.assertFalse([e for e in avg.validate() if 'Input subtomograms' in e])
        star = os.path.join(tempfile.mkdtemp(dir=self.outputPath), 'input_particles.star')
        writer = createWriterTomo40(starHeaders=RELION_40_TOMO_LABELS)
        writer.subtomograms2Star(subs, star)
        table = read_star(star)
        self.assertEqual(len(table), subs.getSize())
        for key in ('rlnTomoName', 'rlnImageName', 'rlnCoordinateX', 'rlnCoordinateZ'):
            self.assertIn(key, table)
        self.assertTrue(all(os.path.isfile(p) for p in table['rlnImageName']))
        self.assertTrue(any(float(x) != 0.0 for x in table['rlnCoordinateX']))

    def _checkRelion5ExtractInput(self, coords):
        """RELION 5 'Extract subtomos' takes the coordinates (plus tilt series and CTF)."""
        from reliontomo.protocols.protocol_re5_extract_subtomos import ProtRelion5ExtractSubtomos
        ext = self.newProtocol(ProtRelion5ExtractSubtomos)
        classes = [c.strip() for c in ext.getParam('inReParticles').pointerClass.get().split(',')]
        self.assertIn(type(coords).__name__, classes)
        ext.inReParticles.set(coords)
        self.assertTrue(ext.isInputSetOf3dCoords())
