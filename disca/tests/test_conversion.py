# -*- coding: utf-8 -*-
"""Unit tests of the plugin's engine helpers: conversion (Scipion sets <-> engine STAR files),
class averages, report summary, log lines and form parsers."""
import json
import os
import shutil
import tempfile
import unittest

import numpy as np
import mrcfile

import pwem
from tomo.constants import BOTTOM_LEFT_CORNER
from tomo.objects import (Coordinate3D, SetOfCoordinates3D, SetOfSubTomograms, SetOfTomograms,
                          SubTomogram, Tomogram)

from disca_engine.io.star import read_star, write_star, StarTable
from disca.protocols import conversion, engine_log, form_parsers, predict_chunks, run_summary

pwem.Domain.getPlugins()


def _writeMrc(path, data, voxel=14.0):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.asarray(data, dtype=np.float32))
        mrc.voxel_size = voxel


class TestParsing(unittest.TestCase):
    def test_class_list(self):
        self.assertEqual(form_parsers.parseClassList('1,3-5'), [1, 3, 4, 5])
        self.assertEqual(form_parsers.parseClassList(' 2 , 2,7 '), [2, 7])
        self.assertEqual(form_parsers.parseClassList(''), [])
        for bad in ('a', '5-3', '1,,x', '-2'):
            with self.assertRaises(ValueError):
                form_parsers.parseClassList(bad)

    def test_k_range(self):
        self.assertEqual(form_parsers.parseKRange('2:5'), [2, 3, 4, 5])
        self.assertEqual(form_parsers.parseKRange('10,5,20'), [5, 10, 20])
        self.assertEqual(form_parsers.kRangeArgument(' 2 : 20 '), '2:20')
        self.assertEqual(form_parsers.kRangeArgument('5, 10,20'), '5,10,20')
        # one syntax, the engine's: what the form accepts, the engine accepts
        for bad in ('', '5:2', '0:3', 'x', '1', '3-5', '5 10 20'):
            with self.assertRaises(ValueError):
                form_parsers.parseKRange(bad)

    def test_last_iteration(self):
        log = ('DISCA (fast preset): 92 subtomograms\n'
               'iteration 1/2: K=4 BIC=1523.9 (de_novo) DDBI=0.005 changed=100.0%\n'
               'iteration 2/2: K=3 BIC=1273.7 (de_novo) DDBI=0.059\nrestart 0 (seed 0): lowest')
        self.assertEqual(engine_log.lastIteration(log),
                         'iteration 2/2: K=3 BIC=1273.7 (de_novo) DDBI=0.059')
        self.assertIsNone(engine_log.lastIteration('DISCA (fast preset)'))

    def test_report_summary(self):
        report = {'k': 3, 'n_particles': 30, 'box_size': 24, 'preset': 'fast',
                  'cluster_sizes': [10, 12, 8], 'chosen_iteration': 2, 'ddbi': 0.41234,
                  'iterations': [{}, {}, {}], 'restarts': [{}, {}], 'chosen_restart': 1,
                  'seconds_total': 12.0}
        text = '\n'.join(run_summary.reportSummary(report))
        self.assertIn('K = 3 clusters from 30 subtomograms', text)
        self.assertIn('1: 10, 2: 12, 3: 8', text)
        self.assertIn('Chosen iteration 2 of 3 (lowest DDBI = 0.412)', text)
        self.assertIn('Best of 2 restarts', text)
        self.assertEqual(run_summary.reportSummary(None), [])


class TestFiles(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='disca_engine_io_')

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _clusters(self, ids, classes, posteriors=None, images=None):
        cols = {'rlnImageName': images or ['p%d.mrc' % i for i in ids],
                'discaItemId': ids, 'rlnClassNumber': classes}
        if posteriors is not None:
            cols['rlnMaxValueProbDistribution'] = posteriors
        path = os.path.join(self.tmp, 'clusters.star')
        write_star(path, StarTable(cols))
        return path

    def test_read_clusters(self):
        path = self._clusters([5, 7, 9], [2, 1, 2], [0.9, 0.55, 1.0])
        result = conversion.readClusters(path)
        self.assertEqual(result, {5: (2, 0.9), 7: (1, 0.55), 9: (2, 1.0)})
        conversion.checkAllAssigned(result, [5, 7, 9])
        with self.assertRaisesRegex(conversion.EngineOutputError, '1 subtomograms have no class'):
            conversion.checkAllAssigned(result, [5, 7, 9, 11])

    def test_read_clusters_errors(self):
        with self.assertRaisesRegex(conversion.EngineOutputError, 'missing'):
            conversion.readClusters(os.path.join(self.tmp, 'nope.star'))
        path = os.path.join(self.tmp, 'noid.star')
        write_star(path, StarTable({'rlnImageName': ['a.mrc'], 'rlnClassNumber': [1]}))
        with self.assertRaisesRegex(conversion.EngineOutputError, '_discaItemId'):
            conversion.readClusters(path)
        path = self._clusters([1, 1], [1, 2])
        with self.assertRaisesRegex(conversion.EngineOutputError, 'repeats'):
            conversion.readClusters(path)

    def _chunk(self, name, ids, classes, averages):
        """A finished predict folder: clusters.star, summary.json and averages/."""
        folder = os.path.join(self.tmp, name)
        os.makedirs(os.path.join(folder, 'averages'))
        write_star(os.path.join(folder, 'clusters.star'),
                   StarTable({'rlnImageName': ['/d/%d.mrc' % i for i in ids], 'discaItemId': ids,
                              'rlnClassNumber': classes}))
        counts = {str(c): classes.count(c) for c in (1, 2, 3)}
        with open(os.path.join(folder, 'summary.json'), 'w') as fh:
            json.dump({'counts': counts}, fh)
        for cls, value in averages.items():
            _writeMrc(conversion.averagePath(folder, cls), np.full((4, 4, 4), value))
        return folder

    def test_merge_predictions(self):
        a = self._chunk('a', [1, 2, 3], [1, 1, 2], {1: 2.0, 2: 10.0})
        b = self._chunk('b', [4, 5], [1, 3], {1: 5.0, 3: -1.0})
        counts = predict_chunks.mergePredictions([a, b], self.tmp, voxelSize=14.0)
        self.assertEqual(counts, {1: 3, 2: 1, 3: 1})
        assigned = conversion.readClusters(os.path.join(self.tmp, 'clusters.star'))
        self.assertEqual({i: c for i, (c, _) in assigned.items()}, {1: 1, 2: 1, 3: 2, 4: 1, 5: 3})
        merged = read_star(os.path.join(self.tmp, 'clusters.star'))
        self.assertEqual(merged['discaItemId'], ['1', '2', '3', '4', '5'])
        self.assertEqual(merged['rlnClassNumber'], ['1', '1', '2', '1', '3'])
        with mrcfile.open(conversion.averagePath(self.tmp, 1)) as mrc:
            np.testing.assert_allclose(mrc.data, (2 * 2.0 + 5.0) / 3)  # weighted by members
            self.assertAlmostEqual(float(mrc.voxel_size.x), 14.0, places=3)
        with mrcfile.open(conversion.averagePath(self.tmp, 3)) as mrc:
            np.testing.assert_allclose(mrc.data, -1.0)
        with open(os.path.join(self.tmp, 'summary.json')) as fh:
            self.assertEqual(json.load(fh)['counts'], {'1': 3, '2': 1, '3': 1})

    def test_merge_refuses_an_unfinished_chunk(self):
        a = self._chunk('a', [1], [1], {1: 1.0})
        os.remove(os.path.join(a, 'summary.json'))
        with self.assertRaisesRegex(conversion.EngineOutputError, 'no finished predict output'):
            predict_chunks.mergePredictions([a], self.tmp)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, 'clusters.star')))

    def test_plan_chunks(self):
        names = ['t1', 't1', 't2', 't1', 't3']
        self.assertEqual(predict_chunks.planChunks(names), [[0, 1, 3], [2], [4]])
        self.assertEqual(predict_chunks.planChunks(names, 2), [[0, 1], [2, 3], [4]])
        self.assertEqual(predict_chunks.planChunks(['', '', '']), [[0, 1, 2]])

    def test_read_report(self):
        self.assertIsNone(run_summary.readReport(self.tmp))
        with open(os.path.join(self.tmp, 'report.json'), 'w') as fh:
            json.dump({'k': 4}, fh)
        # report.json alone is a run killed before its completion marker (clusters.star)
        self.assertIsNone(run_summary.readReport(self.tmp))
        self._clusters([1], [1])
        self.assertEqual(run_summary.readReport(self.tmp)['k'], 4)

    # ---------------------------------------------------------------- sets -> STAR
    def _subtomoSet(self, withCoords=True):
        """Two tomograms (sizes differ), 3 subtomograms with coordinates, in a tmp sqlite."""
        tomos = SetOfTomograms(filename=os.path.join(self.tmp, 'tomos.sqlite'))
        tomos.setSamplingRate(14.0)
        for i, shape in enumerate([(20, 40, 30), (10, 30, 50)]):
            fn = os.path.join(self.tmp, 'tomo%d.mrc' % i)
            _writeMrc(fn, np.zeros(shape))
            tomo = Tomogram(location=fn)
            tomo.setSamplingRate(14.0)
            tomo.setTsId('tomo%d' % i)
            tomo.setOrigin()  # centred origin, as imports do
            tomos.append(tomo)
        tomos.write()
        coords = SetOfCoordinates3D(filename=os.path.join(self.tmp, 'coords.sqlite'))
        coords.setPrecedents(tomos)
        coords.setSamplingRate(14.0)
        coords.setBoxSize(8)
        subtomos = SetOfSubTomograms(filename=os.path.join(self.tmp, 'subtomos.sqlite'))
        subtomos.setSamplingRate(14.0)
        positions = [(0, (3, 4, 5), 0.5), (0, (29, 39, 19), 0.25), (1, (10, 11, 2), 0.75)]
        tomoList = [t.clone() for t in tomos]
        for n, (ti, (x, y, z), score) in enumerate(positions):
            coord = Coordinate3D()
            coord.setVolume(tomoList[ti])
            coord.setPosition(x, y, z, BOTTOM_LEFT_CORNER)
            coord.setScore(score)
            coords.append(coord)
            fn = os.path.join(self.tmp, 'sub%d.mrc' % n)
            _writeMrc(fn, np.zeros((8, 8, 8)))
            sub = SubTomogram(location=fn)
            sub.setSamplingRate(14.0)
            if withCoords:
                sub.setCoordinate3D(coord)
                sub.setVolName(tomoList[ti].getTsId())
            subtomos.append(sub)
        coords.write()
        if withCoords:
            subtomos.setCoordinates3D(coords)
        subtomos.write()
        return subtomos, positions

    def test_star_from_set_with_coordinates(self):
        subtomos, positions = self._subtomoSet()
        star = os.path.join(self.tmp, 'extra', 'particles.star')
        self.assertEqual(conversion.writeParticlesStar(subtomos, star), 3)
        table = read_star(star)
        self.assertEqual(table['discaItemId'], ['1', '2', '3'])
        self.assertEqual(table['rlnImageName'][0], os.path.join(self.tmp, 'sub0.mrc'))
        self.assertTrue(all(os.path.isabs(p) for p in table['rlnImageName']))
        self.assertEqual(table['rlnTomoName'], ['tomo0', 'tomo0', 'tomo1'])
        self.assertEqual(table['discaTomogramFile'][2], os.path.join(self.tmp, 'tomo1.mrc'))
        for axis, key in enumerate(('rlnCoordinateX', 'rlnCoordinateY', 'rlnCoordinateZ')):
            got = [float(v) for v in table[key]]
            self.assertEqual(got, [float(p[1][axis]) for p in positions], key)
        self.assertEqual([float(v) for v in table['rlnAutopickFigureOfMerit']], [0.5, 0.25, 0.75])

    def test_star_from_set_without_coordinates(self):
        subtomos, _ = self._subtomoSet(withCoords=False)
        table = conversion.subtomogramsToTable(subtomos)
        self.assertEqual(sorted(table.columns), ['discaItemId', 'rlnImageName'])
        self.assertEqual(len(table), 3)

    def test_image_name_of_stack_member(self):
        sub = SubTomogram(location=(3, os.path.join(self.tmp, 'stack.mrcs')))
        self.assertEqual(conversion.imageName(sub), '3@' + os.path.join(self.tmp, 'stack.mrcs'))
        sub = SubTomogram(location=(1, os.path.join(self.tmp, 'single.mrc:mrc')))
        self.assertEqual(conversion.imageName(sub), os.path.join(self.tmp, 'single.mrc'))
