# -*- coding: utf-8 -*-
"""Cluster verdicts in Scipion (issue 24): the clustering's classes carry each cluster's
verdict and resolution from report.json, the export takes the structure-like clusters when
its field is left empty and says why, the wizard, viewer and summary list them structures
first; a selection file from the report's embedding exports exactly its subtomograms, and a
wrong one is one form message. The engine is faked (a script writing clusters.star and report.json), so no
TensorFlow and about 20 s.

Run:  cd /tmp && python -m pytest --pyargs disca.tests.test_export_verdicts
"""
import json
import os
import stat
import sys

import numpy as np
import mrcfile

import pwem
from pyworkflow.tests import BaseTest, setupTestProject

from disca.constants import DISCA_ENGINE, PRESET_CHOICES
from disca.protocols import DiscaProtCluster, DiscaProtExport
from disca.protocols.cluster_verdicts import RESOLUTION_ATTR, VERDICT_ATTR
from disca.viewers.viewer_cluster import verdictLines
from disca.wizards.cluster_picker import clusterRows

pwem.Domain.getPlugins()

N, BOX = 20, 16
# cluster 1: junk-like; 2 and 3 structures, 3 at the better resolution
ROWS = [{"cluster": 3, "size": 6, "share": 0.3, "verdict": "structure", "resolution_A": 31.0,
         "nyquist_limited": False, "null_ratio": 1.9, "reliability": 0.8,
         "reason": "FSC 0.143 at 31 Å; members match the average 1.90x better than noise"},
        {"cluster": 2, "size": 7, "share": 0.35, "verdict": "structure", "resolution_A": 48.0,
         "nyquist_limited": False, "null_ratio": 1.6, "reliability": 0.7,
         "reason": "FSC 0.143 at 48 Å; members match the average 1.60x better than noise"},
        {"cluster": 1, "size": 7, "share": 0.35, "verdict": "junk-like", "resolution_A": None,
         "nyquist_limited": False, "null_ratio": 1.02, "reliability": 0.0,
         "reason": "FSC under 0.143 from the first shell; members match the average 1.02x "
                   "better than noise (under 1.3x)"}]

FAKE_ENGINE = '''#!%(python)s
"""Stands in for disca-engine cluster: classes by item id, report.json with verdicts."""
import json, os, sys
from disca_engine.io.star import StarTable, read_star, write_star
args = sys.argv[1:]
inp, out = args[args.index('--input') + 1], args[args.index('--output') + 1]
os.makedirs(out, exist_ok=True)
table = read_star(inp)
ids = [int(i) for i in table['discaItemId']]
classes = [1 + (i - 1) // 7 for i in ids]
write_star(os.path.join(out, 'clusters.star'), StarTable(
    {'rlnImageName': table['rlnImageName'], 'discaItemId': table['discaItemId'],
     'rlnClassNumber': classes, 'rlnMaxValueProbDistribution': ['0.99'] * len(ids)},
    'particles'))
with open(os.path.join(out, 'report.json'), 'w') as fh:
    json.dump({'k': 3, 'n_particles': len(ids), 'box_size': %(box)d, 'voxel_size': 14.0,
               'preset': 'fast', 'chosen_iteration': 1, 'iterations': [{}], 'ddbi': 0.5,
               'cluster_sizes': [classes.count(c) for c in (1, 2, 3)],
               'clusters': %(rows)s}, fh)
'''


class TestExportVerdicts(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        folder = os.path.abspath(cls.getOutputPath('boxes'))
        os.makedirs(folder, exist_ok=True)
        rng = np.random.default_rng(0)
        for i in range(N):
            with mrcfile.new(os.path.join(folder, 'sub_%03d.mrc' % (i + 1)), overwrite=True) as m:
                m.set_data(rng.standard_normal((BOX,) * 3).astype(np.float32))
                m.voxel_size = 14.0
        engine = os.path.join(folder, 'fake-disca-engine')
        with open(engine, 'w') as fh:
            fh.write(FAKE_ENGINE % {'python': sys.executable, 'box': BOX, 'rows': repr(ROWS)})
        os.chmod(engine, os.stat(engine).st_mode | stat.S_IEXEC)
        cls._engineBefore = os.environ.get(DISCA_ENGINE)
        os.environ[DISCA_ENGINE] = engine
        from tomo.protocols import ProtImportSubTomograms
        imp = cls.newProtocol(ProtImportSubTomograms, filesPath=folder,
                              filesPattern='sub_*.mrc', samplingRate=14.0)
        cls.launchProtocol(imp)
        cluster = cls.newProtocol(DiscaProtCluster, preset=PRESET_CHOICES.index('fast'),
                                  kRange='2:3', useGpu=False, writeReport=False)
        cluster.inputSubtomos.set(imp)
        cluster.inputSubtomos.setExtended('outputSubTomograms')
        cls.cluster = cls.launchProtocol(cluster)

    @classmethod
    def tearDownClass(cls):
        if cls._engineBefore is None:
            os.environ.pop(DISCA_ENGINE, None)
        else:
            os.environ[DISCA_ENGINE] = cls._engineBefore

    def _export(self, classNumbers):
        prot = self.newProtocol(DiscaProtExport, classNumbers=classNumbers)
        prot.inputClasses.set(self.cluster)
        prot.inputClasses.setExtended('classes')
        return prot

    def test_classes_carry_the_verdicts(self):
        got = {c.getObjId(): (getattr(c, VERDICT_ATTR).get(),
                              getattr(c, RESOLUTION_ATTR).get()
                              if getattr(c, RESOLUTION_ATTR, None) is not None else None)
               for c in self.cluster.classes.iterItems()}
        self.assertEqual(got, {1: ('junk-like', None), 2: ('structure', 48.0),
                               3: ('structure', 31.0)})

    def test_export_preselects_the_structure_like_clusters(self):
        prot = self._export('')
        self.assertEqual(prot.chosenWhy()[0], [2, 3])
        self.assertEqual(prot._validate(), [])
        prot = self.launchProtocol(prot)
        names = sorted(name for name, _ in prot.iterOutputAttributes())
        self.assertEqual(names, ['subtomograms_class002', 'subtomograms_class003'])
        self.assertEqual(prot.subtomograms_class002.getSize(), 7)
        summary = prot.summary()
        self.assertIn('Chosen clusters: 2, 3 (judged structures by the clustering (default))',
                      summary[0])
        # structures first, best resolution first, with their reasons
        self.assertTrue(summary[1].startswith('cluster 3: structure, 31 Å'), summary)
        self.assertTrue(summary[2].startswith('cluster 2: structure, 48 Å'), summary)
        # the output sets are not listed again (Scipion shows them beside the summary)
        self.assertFalse(any('items' in line for line in summary), summary)
        self.assertIn('judged structures', prot.methods()[0])

    def test_typed_and_all_override_the_default(self):
        self.assertEqual(self._export('1').chosenWhy()[0], [1])
        self.assertEqual(self._export('all').chosenWhy()[0], [1, 2, 3])
        self.assertEqual(self._export('all')._validate(), [])
        self.assertIn('do not exist', self._export('7')._validate()[0])

    def test_wizard_viewer_and_summary_list_structures_first(self):
        rows = clusterRows(self.cluster.classes)
        self.assertEqual([(r[0], r[2]) for r in rows],
                         [(3, 'structure'), (2, 'structure'), (1, 'junk-like')])
        lines = verdictLines(self.cluster.getEngineOutputDir())
        self.assertIn('2 of 3 clusters look like structures', lines[0])
        self.assertEqual([int(ln.split()[1]) for ln in lines[1:]], [3, 2, 1])
        text = '\n'.join(self.cluster.summary())
        self.assertIn('Structure-like clusters (cluster (resolution, size)): 3 (31 Å, 6), '
                      '2 (48 Å, 7)', text)
        self.assertIn('Junk-like clusters (cluster (resolution, size)): 1 (no resolution, 7)',
                      text)

    def _selectionFile(self, rows, name='sel.tsv', ids=True):
        """A selection file (as the report page writes it) of clusters.star rows (0-based)."""
        from disca_engine.io.star import read_particles
        from disca_engine.selection import format_selection
        starFile = os.path.join(self.cluster.getEngineOutputDir(), 'clusters.star')
        table = read_particles(starFile)
        text = format_selection([r + 1 for r in rows], [table['rlnImageName'][r] for r in rows],
                                [table['discaItemId'][r] if ids else '' for r in rows],
                                [table['rlnClassNumber'][r] for r in rows], starFile, 'test')
        path = os.path.abspath(self.getOutputPath(name))
        with open(path, 'w') as fh:
            fh.write(text)
        return path, [int(table['discaItemId'][r]) for r in rows]

    def test_export_takes_a_selection_file(self):
        # rows 0, 1 (class 1) and 8, 12 (class 2): item ids 1, 2, 9, 13
        path, ids = self._selectionFile([0, 1, 8, 12])
        prot = self._export('3')  # ignored: the selection decides
        prot.selectionFile.set(path)
        self.assertEqual(prot._validate(), [])
        self.assertEqual(prot.chosenWhy()[0], [1, 2])
        prot = self.launchProtocol(prot)
        got = sorted(s.getObjId() for name in ('subtomograms_class001', 'subtomograms_class002')
                     for s in getattr(prot, name).iterItems())
        self.assertEqual(got, sorted(ids))
        self.assertIn('selection file sel.tsv', prot.summary()[0])

    def test_bad_selection_files_give_one_clear_message(self):
        bad = os.path.abspath(self.getOutputPath('notes.txt'))
        with open(bad, 'w') as fh:
            fh.write('cluster 3 looks good\n')
        outside, _ = self._selectionFile([0, 1], name='outside.tsv', ids=False)
        other = os.path.abspath(self.getOutputPath('other.tsv'))
        with open(outside) as fh, open(other, 'w') as out:  # item ids of another project
            out.write(fh.read().replace('\t\t', '\t999\t'))
        for path, message in ((bad, 'is not a DISCA selection file'),
                              (outside, 'made from a run outside Scipion'),
                              (other, 'not in the input classes (e.g. item 999)'),
                              ('/no/such/file.tsv', 'not found')):
            prot = self._export('')
            prot.selectionFile.set(path)
            errors = prot._validate()
            self.assertEqual(len(errors), 1, errors)
            self.assertTrue(errors[0].startswith('Selection file: '), errors)
            self.assertIn(message, errors[0])
