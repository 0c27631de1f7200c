# -*- coding: utf-8 -*-
"""Wizards: registered for the picking protocol, and their non-GUI functions give sensible
numbers (no display needed)."""
import os
import tempfile
import unittest
from types import SimpleNamespace

import numpy as np
from scipy.spatial import cKDTree

import pwem
from pyworkflow.wizard import DESKTOP_TKINTER

from disca.protocols import DiscaProtDogPicking
from disca.protocols.picking_utils import suggestedBoxSize
from disca.tests import synthetic
from disca.wizards import DiscaBoxSizeWizard, DiscaDogPreviewWizard
from disca.wizards.box_size import boxSizeFor
from disca.wizards.dog_preview import previewFor, writePreviewPng


class TestDiscaWizards(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.paths, truth = synthetic.simulate(cls.tmp.name, n_tomograms=1)
        cls.truth = synthetic.readTruth(truth)['tomo_001'][0]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_registered(self):
        wizards = pwem.Domain.findWizards(DiscaProtDogPicking(), DESKTOP_TKINTER)
        self.assertIs(wizards.get('boxSize'), DiscaBoxSizeWizard)
        for param in ('thresholdSigma', 'threshold', 'particleDiameter'):
            self.assertIs(wizards.get(param), DiscaDogPreviewWizard)

    def test_box_size(self):
        self.assertEqual(suggestedBoxSize(250, 14), 28)     # 1.5 x 17.9 = 26.8 -> 28
        self.assertEqual(suggestedBoxSize(200, 14), 24)     # 21.4 -> 22 -> minimum 24
        self.assertEqual(suggestedBoxSize(300, 7), 66)      # 64.3 -> 65 -> even 66
        tomos = SimpleNamespace(getSamplingRate=lambda: 10.0)
        prot = SimpleNamespace(inputTomograms=SimpleNamespace(get=lambda: tomos),
                               particleDiameter=SimpleNamespace(get=lambda: 400.0))
        self.assertEqual(boxSizeFor(prot), 60)
        prot.inputTomograms = SimpleNamespace(get=lambda: None)
        with self.assertRaises(ValueError):
            boxSizeFor(prot)

    def test_preview_numbers_and_png(self):
        path = self.paths[0]
        z = int(round(np.median(self.truth[:, 2])))
        prev = previewFor(path, synthetic.VOXEL_A, synthetic.DIAMETER_A, z=z)
        self.assertEqual(prev.tomogram_slice.shape, synthetic.SHAPE[1:])
        self.assertGreater(len(prev.picks), 0)
        # Picks lie near the previewed slice and find the true particles centred there
        # (DoG also picks the simulated gold and vesicles: precision is not the point).
        radius = synthetic.DIAMETER_A / 2 / synthetic.VOXEL_A
        self.assertTrue(np.all(np.abs(prev.picks.xyz[:, 2] - z) <= 2 * radius + 1))
        near = self.truth[np.abs(self.truth[:, 2] - z) <= 2]
        self.assertGreater(len(near), 0)
        dist, _ = cKDTree(prev.picks.xyz).query(near)
        self.assertGreaterEqual(np.mean(dist <= radius), 0.6)
        # A stricter threshold keeps fewer picks.
        strict = previewFor(path, synthetic.VOXEL_A, synthetic.DIAMETER_A, z=z, thresholdSigma=8)
        self.assertGreater(strict.threshold, prev.threshold)
        self.assertLessEqual(len(strict.picks), len(prev.picks))
        png = writePreviewPng(os.path.join(self.tmp.name, 'preview.png'), prev, 'tomo_001')
        with open(png, 'rb') as fh:
            self.assertEqual(fh.read(8), b'\x89PNG\r\n\x1a\n')
