# -*- coding: utf-8 -*-
"""Viewer of the DISCA clustering and classification protocols.

The pictures are written by the engine (``disca-engine report``, run at the end of
``cluster``) into ``extra/disca/report/`` of the protocol; this viewer finds and shows
them, opens the self-contained HTML report, shows the class averages in tomo's viewer, and
can regenerate the report with the engine. On a machine without display it prints where
the files are.
"""
import glob
import os
import subprocess

import pyworkflow.protocol.params as params
from pyworkflow.viewer import ProtocolViewer, DESKTOP_TKINTER

from .views import BrowserView, ConsoleMessageView, PngView, hasDisplay

from disca_engine.contract import CLUSTERS_STAR, REPORT_JSON, SUMMARY_JSON


def _clusterProtocols():
    """The protocol classes this viewer targets (empty if they cannot be imported, so the
    viewer module itself always imports)."""
    try:
        from disca.protocols.protocol_cluster import DiscaProtCluster
        from disca.protocols.protocol_classify import DiscaProtClassify
        return [DiscaProtCluster, DiscaProtClassify]
    except ImportError:
        return []


def findEngineDir(protocol):
    """Engine output folder inside the protocol's extra folder (``extra/disca`` first, else
    the first one found): a finished cluster (report.json) or predict (summary.json) run,
    finished meaning it has clusters.star, which the engine writes last; None if there is
    none yet."""
    extra = protocol._getExtraPath()
    preferred = os.path.join(extra, 'disca')

    def isEngineDir(files):
        return CLUSTERS_STAR in files and (REPORT_JSON in files or SUMMARY_JSON in files)

    if os.path.isdir(preferred) and isEngineDir(os.listdir(preferred)):
        return preferred
    for root, dirs, files in os.walk(extra):
        dirs.sort()
        if isEngineDir(files):
            return root
    return None


def reportFiles(engineDir):
    """{kind: [paths]} of the report pictures present in ``engineDir/report`` (and the
    basic plots the clustering writes in ``engineDir/plots``)."""
    rep = os.path.join(engineDir, 'report')

    def find(*patterns, where=rep):
        return sorted(p for pat in patterns for p in glob.glob(os.path.join(where, pat)))

    return {'html': find('index.html'),
            'iterations': find('bic.png', 'iterations.png', 'sizes.png', 'confusion.png')
            or find('*.png', where=os.path.join(engineDir, 'plots')),
            'embedding': find('embedding.png'),
            'averages': find('averages.png'),
            'clusters': find('cluster_[0-9][0-9][0-9].png'),
            'tomograms': find('reembed_*.png'),
            'labelmaps': find(os.path.join('labelmaps', '*_labels.mrc')),
            'decoded': find(os.path.join('decoded', 'class_*.mrc'))}


def regenerateCommand(engineDir, decoder=True):
    """The engine command (list) that rewrites the report of ``engineDir``."""
    from disca import Plugin
    cmd = [Plugin.getEngineProgram(), 'report', engineDir]
    return cmd if decoder else cmd + ['--no-decoder']


class DiscaClusterViewer(ProtocolViewer):
    """Pictures of a DISCA clustering: report, iteration plots, feature embedding, class
    montages, clusters re-embedded in the tomograms, class averages."""
    _label = 'DISCA clustering results'
    _targets = _clusterProtocols()
    _environments = [DESKTOP_TKINTER]

    def _defineParams(self, form):
        form.addSection(label='Visualization')
        form.addParam('showReport', params.LabelParam, label='Open the HTML report',
                      help='Self-contained report (all pictures inline) in the web browser.')
        form.addParam('showIterations', params.LabelParam,
                      label='Plots per iteration (BIC vs K, K and DDBI, sizes)')
        form.addParam('showEmbedding', params.LabelParam,
                      label='Feature embedding (t-SNE/UMAP) over iterations')
        form.addParam('showAverages', params.LabelParam,
                      label='Averages and decoded centres of all clusters')
        group = form.addGroup('One cluster')
        group.addParam('clusterNumber', params.IntParam, default=1, label='Cluster number',
                       help='Cluster (class) number as in the report, 1..K.')
        group.addParam('showMontage', params.LabelParam,
                       label='Montage: average, decoded centre and best members')
        form.addParam('showTomograms', params.LabelParam,
                      label='Clusters re-embedded in the tomograms',
                      help='Slices with the picks drawn in cluster colours. Label maps to overlay '
                           'in IMOD/ChimeraX/napari are in the report folder (labelmaps/).')
        form.addParam('showClasses', params.LabelParam,
                      label="Class averages in tomo's viewer")
        form.addParam('regenerate', params.LabelParam,
                      label='Regenerate the report (runs the engine)',
                      help='Rewrites extra/disca/report with "disca-engine report" (about a minute; '
                           'retrains the decoder).')

    def _getVisualizeDict(self):
        return {'showReport': self._showReport,
                'showIterations': lambda p=None: self._showPngs('iterations', 'DISCA iterations'),
                'showEmbedding': lambda p=None: self._showPngs('embedding', 'DISCA embedding'),
                'showAverages': lambda p=None: self._showPngs('averages', 'DISCA averages'),
                'showMontage': self._showMontage,
                'showTomograms': lambda p=None: self._showPngs('tomograms', 'DISCA re-embedding'),
                'showClasses': self._showClasses,
                'regenerate': self._regenerate}

    # ------------------------------------------------------------------ helpers
    def _message(self, msg):
        return [ConsoleMessageView(msg, 'DISCA', tkParent=self.getTkRoot())]

    def _files(self):
        engineDir = findEngineDir(self.protocol)
        return engineDir, (reportFiles(engineDir) if engineDir else None)

    def _missing(self, engineDir, what):
        if engineDir is None:
            return self._message('No DISCA results in %s yet: has the protocol finished?'
                                 % self.protocol._getExtraPath())
        return self._message('%s not found in %s. Regenerate the report (option below) or run: %s'
                             % (what, os.path.join(engineDir, 'report'),
                                ' '.join(regenerateCommand(engineDir))))

    # ------------------------------------------------------------------ views
    def _showReport(self, param=None):
        engineDir, files = self._files()
        if not files or not files['html']:
            return self._missing(engineDir, 'index.html')
        return [BrowserView(files['html'][0])]

    def _showPngs(self, kind, title):
        engineDir, files = self._files()
        if not files or not files[kind]:
            return self._missing(engineDir, '%s pictures' % kind)
        return [PngView(files[kind], title)]

    def _showMontage(self, param=None):
        engineDir, files = self._files()
        n = self.clusterNumber.get()
        wanted = [p for p in (files or {}).get('clusters', [])
                  if os.path.basename(p) == 'cluster_%03d.png' % (n or 0)]
        if not wanted:
            return self._missing(engineDir, 'montage of cluster %s' % n)
        return [PngView(wanted, 'DISCA cluster %d' % n)]

    def _showClasses(self, param=None):
        classes = getattr(self.protocol, 'classes', None)
        if classes is None:
            return self._message('The protocol has no output classes yet.')
        engineDir = findEngineDir(self.protocol)
        if not hasDisplay():
            where = os.path.join(engineDir, 'averages') if engineDir else 'extra/disca/averages'
            return self._message('no display; class averages are MRC files in %s' % where)
        from tomo.viewers.viewers_data import TomoDataViewer
        viewer = TomoDataViewer(project=self.getProject(), protocol=self.protocol,
                                parent=self.getWindow())
        return viewer._visualize(classes)

    def _regenerate(self, param=None):
        engineDir = findEngineDir(self.protocol)
        if engineDir is None:
            return self._message('No DISCA results to report on in %s.'
                                 % self.protocol._getExtraPath())
        from disca import Plugin
        cmd = regenerateCommand(engineDir)
        try:
            proc = subprocess.run(cmd, env=Plugin.getEnviron(), capture_output=True, text=True)
        except OSError as exc:
            return self._message('Cannot run the engine (%s): install it with "scipion3 installb '
                                 'disca" or set DISCA_ENGINE.' % exc)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return self._message('Report failed (%s): %s' % (' '.join(cmd), ' | '.join(tail)))
        return self._message('Report rewritten: %s' % os.path.join(engineDir, 'report', 'index.html'))
