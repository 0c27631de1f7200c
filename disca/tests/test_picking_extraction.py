# -*- coding: utf-8 -*-
"""Import -> DoG picking -> extraction on small simulated tomograms with ground truth.

Run: ``cd /tmp && python -m pytest --pyargs disca.tests.test_picking_extraction`` or
``python -m scipion tests disca.tests.test_picking_extraction``.
"""
import os

import mrcfile
import numpy as np
from scipy.spatial import cKDTree

from pyworkflow.tests import BaseTest, setupTestProject
from tomo.constants import BOTTOM_LEFT_CORNER
from tomo.objects import SetOfCoordinates3D

from disca.protocols import DiscaProtDogPicking, DiscaProtExtract
from disca.protocols.picking_utils import suggestedBoxSize
from disca.protocols.protocol_extract import SOURCE_OTHER
from disca.tests import synthetic

MIN_RECALL = 0.75   # of true particles with a pick within half a diameter (measured ~0.88)


def coordsByTomo(coords):
    """tsId -> N x 3 BOTTOM_LEFT_CORNER positions; checks every coordinate's tomogram link."""
    out = {}
    for coord in coords.iterCoordinates():
        vol = coord.getVolume()
        assert vol is not None and vol.getTsId() == coord.getTomoId(), \
            'coordinate %d not linked to its tomogram' % coord.getObjId()
        out.setdefault(coord.getTomoId(), []).append(coord.getPosition(BOTTOM_LEFT_CORNER))
    return {k: np.array(v) for k, v in out.items()}


def recall(picks, truth, radius):
    dist, _ = cKDTree(picks).query(truth)
    return float(np.mean(dist <= radius))


class TestDiscaPickingExtraction(BaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.data = synthetic.SyntheticTomograms.create(cls)
        cls.picking = cls.runPicking(cls.data.tomograms, cls.data.diameter_A)

    @classmethod
    def runPicking(cls, tomograms, diameter, **kwargs):
        prot = cls.newProtocol(DiscaProtDogPicking, inputTomograms=tomograms,
                               particleDiameter=diameter, numberOfThreads=3, **kwargs)
        cls.launchProtocol(prot)
        return prot

    def runExtract(self, coords, **kwargs):
        prot = self.newProtocol(DiscaProtExtract, inputCoordinates=coords,
                                numberOfThreads=3, **kwargs)
        self.launchProtocol(prot)
        return prot

    # ------------------------------------------------------------------ picking --
    def test_picking_finds_particles(self):
        coords = getattr(self.picking, DiscaProtDogPicking._possibleOutputs.coordinates.name)
        self.assertIsInstance(coords, SetOfCoordinates3D)
        self.assertAlmostEqual(coords.getSamplingRate(), synthetic.VOXEL_A)
        self.assertEqual(coords.getBoxSize(), suggestedBoxSize(self.data.diameter_A,
                                                               synthetic.VOXEL_A))
        self.assertEqual(coords.getPrecedents().getSize(), synthetic.N_TOMOGRAMS)
        picked = coordsByTomo(coords)
        self.assertEqual(sorted(picked), sorted(self.data.truth))
        radius = self.data.diameter_A / 2 / synthetic.VOXEL_A
        for tsId, (truthXyz, _) in self.data.truth.items():
            r = recall(picked[tsId], truthXyz, radius)
            self.assertGreaterEqual(r, MIN_RECALL, '%s: recall %.2f' % (tsId, r))
            # DoG over-picks, but not wildly at 3 sigma on these tomograms
            self.assertLess(len(picked[tsId]), 6 * len(truthXyz))
        scores = [c.getScore() for c in coords.iterCoordinates()]
        self.assertTrue(all(s > 0 for s in scores))

    def test_picking_positions_match_engine_files(self):
        """What the engine wrote (0-based voxel centres) is what Scipion stores."""
        from disca_engine.io.star import read_star
        coords = getattr(self.picking, 'coordinates')
        picked = coordsByTomo(coords)
        for tsId in picked:
            table = read_star(self.picking._getExtraPath('%s_coords.star' % tsId))
            xyz = np.stack([table.column('rlnCoordinate%s' % a, float) for a in 'XYZ'], 1)
            np.testing.assert_allclose(np.sort(picked[tsId], axis=0), np.sort(xyz, axis=0),
                                       atol=0.01)

    def test_picking_max_picks_and_box_size(self):
        prot = self.runPicking(self.data.tomograms, self.data.diameter_A, maxPicks=5,
                               boxSize=30)
        coords = prot.coordinates
        self.assertEqual(coords.getBoxSize(), 30)
        counts = {k: len(v) for k, v in coordsByTomo(coords).items()}
        self.assertEqual(counts, {k: 5 for k in self.data.truth})

    def test_picking_with_masks(self):
        """Masks (matched by tsId) keep only picks inside them."""
        from disca_engine.io.mrc import write_volume
        from tomo.protocols import ProtImportTomomasks
        folder = self.getOutputPath('masks')
        os.makedirs(folder, exist_ok=True)
        for path in self.data.paths:
            mask = np.zeros(synthetic.SHAPE, dtype=np.float32)
            mask[:, :, :80] = 1.0   # left half (x < 80)
            write_volume(os.path.join(folder, os.path.basename(path)), mask, synthetic.VOXEL_A)
        imp = self.newProtocol(ProtImportTomomasks, filesPath=folder, filesPattern='tomo_*.mrc',
                               inputTomos=self.data.tomograms)
        self.launchProtocol(imp)
        prot = self.runPicking(self.data.tomograms, self.data.diameter_A,
                               inputMasks=imp.tomomasks)
        masked = coordsByTomo(prot.coordinates)
        unmasked = coordsByTomo(self.picking.coordinates)
        for tsId, xyz in masked.items():
            self.assertGreater(len(xyz), 0)
            self.assertTrue(np.all(xyz[:, 0] < 80), tsId)
            self.assertLess(len(xyz), len(unmasked[tsId]))

    # --------------------------------------------------------------- extraction --
    def checkSubtomos(self, prot, nCoords, box, sampling):
        subtomos = prot.subtomograms
        self.assertAlmostEqual(subtomos.getSamplingRate(), sampling)
        self.assertTrue(subtomos.hasCoordinates3D())
        self.assertEqual(subtomos.getSize() + prot.nSkipped.get(), nCoords)
        self.assertEqual(prot.coordinates.getSize(), subtomos.getSize())
        tsIds = set(self.data.truth)
        for sub in subtomos.iterSubtomos():
            self.assertTrue(os.path.exists(sub.getFileName()), sub.getFileName())
            with mrcfile.open(sub.getFileName(), permissive=True) as mrc:
                data = np.asarray(mrc.data)
            self.assertEqual(data.shape, (box, box, box))
            self.assertAlmostEqual(float(data.mean()), 0.0, places=3)
            self.assertAlmostEqual(float(data.std()), 1.0, places=3)
            coord = sub.getCoordinate3D()
            self.assertIn(coord.getTomoId(), tsIds)
            self.assertTrue(os.path.basename(sub.getVolName()).startswith(coord.getTomoId()))
        return subtomos

    def test_extraction(self):
        coords = self.picking.coordinates
        prot = self.runExtract(coords, boxSize=24)
        self.checkSubtomos(prot, coords.getSize(), 24, synthetic.VOXEL_A)
        # Same sampling: the output coordinates are the input ones (of the kept boxes).
        inPos = np.concatenate(list(coordsByTomo(coords).values()))
        outPos = np.concatenate(list(coordsByTomo(prot.coordinates).values()))
        dist, _ = cKDTree(inPos).query(outPos)
        self.assertLess(dist.max(), 0.01)
        # A box is the normalised tomogram around its coordinate (box centre = index 12).
        sub = next(iter(prot.subtomograms.iterSubtomos()))
        x, y, z = (int(round(v)) for v in sub.getCoordinate3D().getPosition(BOTTOM_LEFT_CORNER))
        with mrcfile.open(sub.getVolName(), permissive=True) as mrc:
            cut = np.asarray(mrc.data[z - 12:z + 12, y - 12:y + 12, x - 12:x + 12], np.float64)
        with mrcfile.open(sub.getFileName(), permissive=True) as mrc:
            box = np.asarray(mrc.data, np.float64)
        np.testing.assert_allclose(box, (cut - cut.mean()) / cut.std(), atol=1e-3)

    def test_extraction_pads_border_boxes(self):
        """'Boxes crossing the border: noise' keeps picks that 'skip' drops, flagged."""
        from disca.protocols.protocol_extract import PADDED_ATTR
        coords = self.picking.coordinates
        skip = self.runExtract(coords, boxSize=40)
        self.assertGreater(skip.nSkipped.get(), 0, 'no border box to pad: raise the box')
        padded = self.runExtract(coords, boxSize=40, borderBoxes=1)
        self.assertGreater(padded.subtomograms.getSize(), skip.subtomograms.getSize())
        fractions = [getattr(s, PADDED_ATTR).get() for s in padded.subtomograms.iterSubtomos()]
        self.assertEqual(sum(f > 0 for f in fractions),
                         padded.subtomograms.getSize() - skip.subtomograms.getSize())
        self.assertTrue(all(0 <= f < 1 for f in fractions))
        self.assertIn('padded', ' '.join(padded.summary()))
        # auto box: the coordinates' box (picking: auto 1.5 x diameter), in output voxels
        auto = self.newProtocol(DiscaProtExtract, inputCoordinates=coords)
        self.assertEqual(auto.getBoxSize(), coords.getBoxSize())
        small = self.newProtocol(DiscaProtExtract, inputCoordinates=coords, boxSize='8')
        self.assertIn('smaller than the particle', ' '.join(small.warnings()))

    def test_extraction_binning(self):
        coords = self.picking.coordinates
        prot = self.runExtract(coords, boxSize=12, binning=2)
        subtomos = self.checkSubtomos(prot, coords.getSize(), 12, 2 * synthetic.VOXEL_A)
        self.assertEqual(prot.coordinates.getBoxSize(), 24)  # in tomogram voxels
        self.assertGreater(subtomos.getSize(), 0)

    def test_coordinates_from_binned_tomograms(self):
        """Pick on 2x-binned tomograms (28 Å), extract from the 14 Å ones."""
        folder = self.getOutputPath('binned2')
        synthetic.binTomograms(self.data.paths, folder, 2)
        binned = synthetic.importTomograms(self, folder, 2 * synthetic.VOXEL_A,
                                           label='binned tomograms')
        picking = self.runPicking(binned, self.data.diameter_A)
        coords = picking.coordinates
        self.assertAlmostEqual(coords.getSamplingRate(), 2 * synthetic.VOXEL_A)
        prot = self.runExtract(coords, boxSize=24, tomoSource=SOURCE_OTHER,
                               inputTomograms=self.data.tomograms)
        self.checkSubtomos(prot, coords.getSize(), 24, synthetic.VOXEL_A)
        out = prot.coordinates
        self.assertAlmostEqual(out.getSamplingRate(), synthetic.VOXEL_A)
        # Output coordinates are in the 14 Å tomograms' voxels: i' = 2 i + 0.5.
        inPos = coordsByTomo(coords)
        outPos = coordsByTomo(out)
        radius = self.data.diameter_A / 2 / synthetic.VOXEL_A
        for tsId, (truthXyz, _) in self.data.truth.items():
            dist, _ = cKDTree(2 * inPos[tsId] + 0.5).query(outPos[tsId])
            self.assertLess(dist.max(), 0.01)
            self.assertGreaterEqual(recall(outPos[tsId], truthXyz, radius), 0.5)  # coarser picking at 28 Å (measured 0.6-0.7)

    # --------------------------------------------------------------- bad input --
    def test_validation_errors(self):
        coords = self.picking.coordinates
        prot = self.newProtocol(DiscaProtExtract, inputCoordinates=coords, boxSize=100)
        errors = ' '.join(prot.validate())
        self.assertIn('larger than tomogram', errors)

        prot = self.newProtocol(DiscaProtDogPicking, inputTomograms=self.data.tomograms,
                                particleDiameter=5000.0)
        self.assertIn('larger than tomogram', ' '.join(prot.validate()))
        prot = self.newProtocol(DiscaProtDogPicking, inputTomograms=self.data.tomograms,
                                particleDiameter=self.data.diameter_A, binning=4)
        self.assertIn('less binning', ' '.join(prot.warnings()))
        prot.binning.set(1)
        self.assertEqual(prot.warnings(), [])

        empty = SetOfCoordinates3D(filename=self.getOutputPath('empty_coords.sqlite'))
        empty.setSamplingRate(synthetic.VOXEL_A)
        empty.setPrecedents(self.data.tomograms)
        empty.write()
        prot = self.newProtocol(DiscaProtExtract)
        prot.inputCoordinates.set(empty)
        self.assertIn('empty', ' '.join(prot.validate()))

    def test_nan_tomogram_fails_clearly(self):
        folder = self.getOutputPath('nan')
        os.makedirs(folder, exist_ok=True)
        with mrcfile.open(self.data.paths[0], permissive=True) as mrc:
            data = np.array(mrc.data, dtype=np.float32)
        data[30, 80, 80] = np.nan
        from disca_engine.io.mrc import write_volume
        write_volume(os.path.join(folder, 'tomo_nan.mrc'), data, synthetic.VOXEL_A)
        tomos = synthetic.importTomograms(self, folder, synthetic.VOXEL_A, pattern='tomo_nan.mrc')
        prot = self.newProtocol(DiscaProtDogPicking, inputTomograms=tomos,
                                particleDiameter=self.data.diameter_A)
        with self.assertRaises(Exception):
            self.launchProtocol(prot)
        message = prot.getErrorMessage() or ''
        self.assertIn('NaN', message)
        self.assertIn('tomo_nan', message)
        self.assertFalse(hasattr(prot, 'coordinates') and prot.coordinates is not None)
