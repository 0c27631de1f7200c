# -*- coding: utf-8 -*-
"""Form values without placeholders, the wizards' arithmetic and the slice browser's
geometry (pure functions; no display, no project).

Run:  cd /tmp && python -m pytest --pyargs disca.tests.test_forms
"""
import os
import tempfile
import unittest

import numpy as np

from disca import constants as C
from disca.protocols.form_values import autoPresetDefault, isAuto, parseOptional
from disca.protocols.picking_utils import (AUTO_BORDER, AUTO_MIN_DISTANCE, AUTO_THRESHOLD,
                                           NO_LIMIT, pickingDefaults, suggestedBoxSize)
from disca.protocols.protocol_cluster import DiscaProtCluster, PRESET_FIELDS
from disca.viewers.viewer_cluster import numbersText
from disca.viewers.window import markersOnSlice, readSlice, sliceCaption
from disca.wizards.cluster_picker import pgmBytes, thumbnail
from disca.wizards.dog_preview import checkDiameter, followBox


class TestFormValues(unittest.TestCase):

    def test_auto_and_numbers(self):
        for text in ('', None, 'auto', 'auto: 0.8 x diameter', NO_LIMIT, 'auto (preset: fast 32)'):
            self.assertTrue(isAuto(text), text)
            self.assertIsNone(parseOptional(text, float, 'x'))
        self.assertEqual(parseOptional('12', int, 'x'), 12)
        self.assertIsNone(parseOptional('-1', float, 'x', autoBelow=-1e-9))  # older projects
        self.assertEqual(parseOptional('0', float, 'x', autoBelow=-1e-9), 0.0)
        with self.assertRaisesRegex(ValueError, "Batch size: 'abc' is not a number"):
            parseOptional('abc', int, 'Batch size')
        with self.assertRaisesRegex(ValueError, 'below 2'):
            parseOptional('1', int, 'Box size', minimum=2)

    def test_picking_defaults(self):
        auto = pickingDefaults(200, C.CONTRAST_DARK, C.THRESHOLD_AUTO, 3.0, AUTO_THRESHOLD,
                               AUTO_MIN_DISTANCE, NO_LIMIT, AUTO_BORDER, 1.1, 1)
        self.assertEqual(auto, dict(particle_diameter_A=200.0, contrast='dark', sigma_ratio=1.1,
                                    bin=1, threshold_sigma=3.0))
        legacy = pickingDefaults(200, 0, C.THRESHOLD_AUTO, 3.0, 0.0, -1, -1, -1, 1.1, 1)
        self.assertEqual(legacy, auto)
        given = pickingDefaults(200, 1, C.THRESHOLD_MANUAL, 3.0, '0.25', '150', '40', '0', 1.1, 2)
        self.assertEqual((given['threshold'], given['min_distance_A'], given['max_picks'],
                          given['border_A'], given['contrast']), (0.25, 150.0, 40, 0.0, 'bright'))
        # manual mode before a value is given: the automatic threshold
        manual = pickingDefaults(200, 0, C.THRESHOLD_MANUAL, 2.5, AUTO_THRESHOLD, None, None,
                                 None, 1.1, 1)
        self.assertEqual(manual['threshold_sigma'], 2.5)
        self.assertNotIn('threshold', manual)
        with self.assertRaisesRegex(ValueError, 'Minimum distance'):
            pickingDefaults(200, 0, 0, 3.0, None, 'ten', None, None, 1.1, 1)

    def test_cluster_fields_show_the_presets(self):
        from disca_engine.settings import PRESETS, preset_values
        text = autoPresetDefault(preset_values('batch_size'))
        for name, method in PRESETS.items():
            self.assertIn('%s %s' % (name, method.network.batch_size), text)
        prot = DiscaProtCluster()
        for name, flag, key, _ in PRESET_FIELDS:
            self.assertTrue(isAuto(getattr(prot, name).get()), name)
            self.assertNotIn(getattr(prot, name).get().strip(), ('0', ''))
        self.assertTrue(isAuto(prot.kRange.get()))
        self.assertEqual(prot._presetOverrides(), [])
        prot.batchSize.set('16')
        prot.maxIterations.set('0')  # older projects: 0 meant the preset's
        self.assertEqual(prot._presetOverrides(), [('--batch-size', 16)])

    def test_auto_step_switches_become_engine_flags(self):
        prot = DiscaProtCluster()
        prot.preset.set(C.PRESET_AUTO)
        self.assertEqual(prot._stepSwitches(), [])          # both steps on by default
        prot.relabel.set(False)
        prot.junkSplit.set(False)
        self.assertEqual(prot._stepSwitches(), ['--no-relabel', '--no-junk-split'])
        prot.particleDiameter.set('250')
        self.assertEqual(prot._stepSwitches()[:2], ['--particle-diameter-A', '250'])
        prot.particleDiameter.set('big')
        with self.assertRaisesRegex(ValueError, 'Particle diameter'):
            prot._stepSwitches()
        prot.particleDiameter.set('auto (estimated from the data)')
        prot.relabel.set(True)
        prot.junkSplit.set(True)
        prot.subsample.set(5000)
        prot.restBy.set(C.REST_BY_CHOICES.index('alignment'))
        self.assertEqual(prot._stepSwitches(), ['--subsample', '5000', '--rest-by', 'alignment'])
        prot.subsample.set(-1)
        with self.assertRaisesRegex(ValueError, 'Subsample -1'):
            prot._stepSwitches()
        prot.subsample.set(0)
        self.assertEqual(prot._stepSwitches()[:2], ['--subsample', '0'])
        prot.preset.set(C.PRESET_FAST)                      # other presets have neither step
        self.assertEqual(prot._stepSwitches(), [])

    def test_box_follows_diameter_and_diameter_bounds(self):
        sr = 14.0
        self.assertEqual(followBox('auto: 1.5 x diameter', 200, 400, sr), 'auto: 1.5 x diameter')
        self.assertEqual(followBox(str(suggestedBoxSize(200, sr)), 200, 400, sr),
                         str(suggestedBoxSize(400, sr)))
        self.assertEqual(followBox('40', 200, 400, sr), '80')   # a chosen box scales
        checkDiameter(200, sr, (64, 160, 160))
        with self.assertRaisesRegex(ValueError, 'more than half the tomogram'):
            checkDiameter(400200, sr, (64, 160, 160))
        with self.assertRaises(ValueError):
            checkDiameter(0, sr, (64, 160, 160))


class TestViewerHelpers(unittest.TestCase):

    def test_numbers_text(self):
        self.assertEqual(numbersText([1, 2, 3, 5, 7, 8]), '1-3, 5, 7-8')
        self.assertEqual(numbersText([]), '')

    def test_slices_and_markers(self):
        self.assertEqual(sliceCaption('z', 12, 24, 14.0), 'z = 12 / 23 voxels (168.0 Å)')
        self.assertEqual(sliceCaption('x', 0, 10), 'x = 0 / 9 voxels')
        xyz = [(10, 20, 5), (30, 40, 50)]
        circles = markersOnSlice(xyz, 4.0, 'z', 6)
        self.assertEqual(len(circles), 1)
        u, v, r = circles[0]
        self.assertEqual((u, v), (10, 20))
        self.assertAlmostEqual(r, np.sqrt(15))
        (u, v, r), = markersOnSlice(xyz, 4.0, 'y', 40)    # plane x (horizontal), z (vertical)
        self.assertEqual((u, v, r), (30, 50, 4.0))
        (u, v, r), = markersOnSlice(xyz, 4.0, 'x', 31)    # plane y, z
        self.assertEqual((u, v), (40, 50))

    def test_read_slice_and_thumbnail(self):
        from disca_engine.io.mrc import write_volume
        vol = np.zeros((8, 10, 12), np.float32)
        vol[3, 4, 5] = 1.0
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'v.mrc')
            write_volume(path, vol, 14.0)
            self.assertEqual(readSlice(path, 'z', 3)[4, 5], 1.0)
            self.assertEqual(readSlice(path, 'y', 4).shape, (8, 12))
            self.assertEqual(readSlice(path, 'x', 5)[3, 4], 1.0)
            img = thumbnail(path, size=72)
            self.assertEqual(img.dtype, np.uint8)
            self.assertGreaterEqual(max(img.shape), 60)
            self.assertGreater(int(img.max()), int(img.min()))
            data = pgmBytes(img)
            self.assertTrue(data.startswith(b'P5 %d %d 255\n' % (img.shape[1], img.shape[0])))
