# -*- coding: utf-8 -*-
"""DISCA viewers: registration for the right protocols, headless behaviour, and the plain
plotting functions writing non-blank PNGs. No TensorFlow (the engine's report is faked).

Run:  cd /tmp && python -m pytest --pyargs disca.tests.test_viewers
"""
import io
import json
import os
from contextlib import redirect_stdout
from unittest import mock

import numpy as np

import pwem
from pyworkflow.tests import BaseTest, setupTestProject
from pyworkflow.viewer import DESKTOP_TKINTER

from disca.protocols import DiscaProtCluster, DiscaProtClassify, DiscaProtDogPicking
from disca.viewers import DiscaClusterViewer, DiscaPickingViewer
from disca.viewers.viewer_cluster import findEngineDir, reportFiles
from disca.viewers.viewer_picking import (plotPicksOnTomogram, plotScoreHistogram,
                                          readThreshold, robustRange)
from disca.viewers.views import BrowserView, ConsoleMessageView
from disca.viewers.window import ResultsView, VolumeTab, markersOnSlice, readSlice, sliceCaption
from disca.tests.synthetic import SyntheticTomograms

pwem.Domain.getPlugins()

HEADLESS = {'DISPLAY': '', 'WAYLAND_DISPLAY': ''}


def checkPng(testCase, path, minColors=4):
    import matplotlib.image as mpimg
    testCase.assertTrue(os.path.isfile(path), path)
    img = mpimg.imread(path)[..., :3]
    testCase.assertGreater(img.shape[0], 150)
    testCase.assertGreater(img.shape[1], 200)
    testCase.assertGreater(float(img.std()), 0.05, '%s looks blank' % path)
    distinct = len(np.unique((img.reshape(-1, 3) * 15).round(), axis=0))
    testCase.assertGreaterEqual(distinct, minColors, path)


def fakeEngineOutput(folder):
    """What `disca-engine cluster` + `report` leave in extra/disca (PNGs drawn here)."""
    from matplotlib.figure import Figure
    rep = os.path.join(folder, 'report')
    os.makedirs(rep, exist_ok=True)
    with open(os.path.join(folder, 'report.json'), 'w') as fh:
        json.dump({'k': 2, 'chosen_iteration': 1, 'iterations': []}, fh)
    open(os.path.join(folder, 'clusters.star'), 'w').close()  # the engine's completion marker
    for name in ('bic.png', 'iterations.png', 'sizes.png', 'embedding.png', 'averages.png',
                 'cluster_001.png', 'cluster_002.png', 'reembed_tomo_001.png'):
        fig = Figure(figsize=(3, 2))
        fig.subplots().plot([0, 1, 2], [0, 2, 1])
        fig.savefig(os.path.join(rep, name))
    with open(os.path.join(rep, 'index.html'), 'w') as fh:
        fh.write('<html><body>report</body></html>')
    return rep


class TestDiscaViewers(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.data = SyntheticTomograms.create(cls, n_tomograms=1, shape=(48, 128, 128))
        prot = cls.newProtocol(DiscaProtDogPicking, particleDiameter=cls.data.diameter_A,
                               boxSize=24)
        prot.inputTomograms.set(cls.data.tomograms)
        cls.pick = cls.launchProtocol(prot)
        cls.cluster = cls.newProtocol(DiscaProtCluster)
        cls.saveProtocol(cls.cluster)

    # ----------------------------------------------------------- registration
    def test_registered_for_the_protocols(self):
        for prot, viewer in ((self.cluster, DiscaClusterViewer), (self.pick, DiscaPickingViewer)):
            found = pwem.Domain.findViewers(prot, DESKTOP_TKINTER)
            self.assertIn(viewer, found, 'viewer not found for %s' % prot.getClassName())
        self.assertEqual(set(DiscaClusterViewer._targets), {DiscaProtCluster, DiscaProtClassify})
        self.assertIn('DiscaClusterViewer', pwem.Domain.getViewers())
        self.assertIn('DiscaPickingViewer', pwem.Domain.getViewers())
        import sys
        self.assertNotIn('tensorflow', sys.modules, 'viewers must not import TensorFlow')

    # ----------------------------------------------------------- cluster viewer
    def test_cluster_viewer_headless(self):
        viewer = DiscaClusterViewer(project=self.proj, protocol=self.cluster)
        viewer.setProtocol(self.cluster)
        actions = viewer._getVisualizeDict()
        with mock.patch.dict(os.environ, HEADLESS):
            # nothing computed yet: a message, not a crash
            views = actions['showReport']()
            self.assertIsInstance(views[0], ConsoleMessageView)
            self.assertIn('No DISCA results', views[0].getMessage())
            engineDir = self.cluster._getExtraPath('disca')
            rep = fakeEngineOutput(engineDir)
            self.assertEqual(os.path.abspath(findEngineDir(self.cluster)), os.path.abspath(engineDir))
            files = reportFiles(engineDir)
            self.assertEqual(len(files['clusters']), 2)
            views = actions['showReport']()
            self.assertIsInstance(views[0], BrowserView)
            for key, n in (('showIterations', 3), ('showEmbedding', 1), ('showAverages', 1),
                           ('showTomograms', 1)):
                views = actions[key]()
                self.assertIsInstance(views[0], ResultsView, key)
                self.assertEqual(len(views[0].getPaths()), n, key)
                for p in views[0].getPaths():
                    self.assertTrue(os.path.isfile(p))
            viewer.clusterNumber.set(2)
            views = actions['showMontage']()
            self.assertEqual(os.path.basename(views[0].getPaths()[0]), 'cluster_002.png')
            # one window per run: every entry carries all the run's tabs
            self.assertEqual(views[0].getTabNames()[:4],
                             ['Iterations', 'Embedding', 'Averages', 'Re-embedding'])
            viewer.clusterNumber.set(7)
            msg = actions['showMontage']()[0].getMessage()
            self.assertIn('Cluster 7 does not exist', msg)
            self.assertIn('clusters 1-2', msg)
            self.assertIn('no output classes', actions['showClasses']()[0].getMessage())
            out = io.StringIO()
            with redirect_stdout(out):  # show() headless: prints where the files are
                actions['showIterations']()[0].show()
                actions['showReport']()[0].show()
            self.assertIn(os.path.join(rep, 'bic.png'), out.getvalue())
            self.assertIn(os.path.join(rep, 'index.html'), out.getvalue())

    # ----------------------------------------------------------- picking viewer
    def test_picking_viewer_headless(self):
        viewer = DiscaPickingViewer(project=self.proj, protocol=self.pick)
        viewer.setProtocol(self.pick)
        key, tomo = viewer._chosen()
        xyz, scores = viewer.picks(tomo)
        self.assertGreater(len(xyz), 5)
        threshold = viewer.threshold(key)
        self.assertIsNotNone(threshold, 'threshold not read from the picking STAR header')
        self.assertGreaterEqual(scores.min(), threshold - 1e-6 * abs(threshold))
        with mock.patch.dict(os.environ, HEADLESS):
            for action in ('showHistogram', 'showPicks'):
                views = viewer._getVisualizeDict()[action]()
                self.assertIsInstance(views[0], ResultsView)
                checkPng(self, views[0].getPaths()[0])
            viewer.allTomograms.set(True)
            checkPng(self, viewer._getVisualizeDict()['showHistogram']()[0].getPaths()[0])
            out = io.StringIO()
            with redirect_stdout(out):
                views[0].show()
            self.assertIn('no display', out.getvalue())

    # ----------------------------------------------------------- plain functions
    def test_plot_functions(self):
        rng = np.random.default_rng(0)
        folder = self.getOutputPath('plots')
        path = plotScoreHistogram(rng.normal(5, 1, 300), os.path.join(folder, 'h.png'),
                                  {'a': 4.0, 'b': 6.0})
        checkPng(self, path)
        tomoPath = self.data.paths[0]
        xyz, _ = self.data.truth[os.path.splitext(os.path.basename(tomoPath))[0]]
        path = plotPicksOnTomogram(tomoPath, xyz, 8.0, os.path.join(folder, 'p.png'),
                                   scores=rng.uniform(0, 1, len(xyz)))
        checkPng(self, path, minColors=8)

    def test_read_threshold(self):
        """The threshold is data (JSON beside the coords STAR), not a parsed comment."""
        folder = self.getOutputPath('plots')
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, 't.star')
        stale = os.path.join(folder, 't.pick.json')  # left by an earlier run of this test
        if os.path.exists(stale):
            os.remove(stale)
        with open(path, 'w') as fh:  # a header comment alone is no longer read
            fh.write('# threshold 0.0123 (background median 0)\n\ndata_coordinates\n')
        self.assertIsNone(readThreshold(path))
        with open(os.path.join(folder, 't.pick.json'), 'w') as fh:
            json.dump({'threshold': 0.0123}, fh)
        self.assertAlmostEqual(readThreshold(path), 0.0123)
        self.assertIsNone(readThreshold(path + '.missing'))

    def test_histogram_robust_range(self):
        """A few gold beads 100x the background do not squash the bulk of the scores."""
        rng = np.random.default_rng(1)
        scores = np.concatenate([rng.normal(1.0, 0.2, 500), [100.0, 120.0, 150.0]])
        lo, hi = robustRange(scores, [0.9])
        self.assertLess(hi, 5.0)
        self.assertLessEqual(lo, 0.9)
        lo, hi = robustRange(scores, [200.0])  # a threshold is always in view
        self.assertGreaterEqual(hi, 200.0)
        path = plotScoreHistogram(scores, os.path.join(self.getOutputPath('plots'), 'gold.png'),
                                  {'': 0.9})
        checkPng(self, path)
