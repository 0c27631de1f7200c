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
from pyworkflow.viewer import ProtocolViewer, View, DESKTOP_TKINTER

from .views import BrowserView, ConsoleMessageView, hasDisplay
from .window import ImageTab, ResultsView, VolumeTab

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
            'decoded': find(os.path.join('decoded', 'class_*.mrc')),
            'averageVolumes': find(os.path.join('averages', 'class_*.mrc'), where=engineDir)}


def clusterNumbers(engineDir, files=None):
    """Cluster numbers that exist in a run (from its averages, montages or report.json)."""
    import re
    files = files or reportFiles(engineDir)
    found = set()
    for path in files['averageVolumes'] + files['clusters']:
        m = re.search(r'(?:class|cluster)_(\d+)\.(?:mrc|png)$', path)
        if m:
            found.add(int(m.group(1)))
    if not found:
        try:
            import json
            with open(os.path.join(engineDir, REPORT_JSON)) as fh:
                found = set(range(1, int(json.load(fh).get('k') or 0) + 1))
        except (OSError, ValueError, TypeError):
            pass
    return sorted(found)


def verdictLines(engineDir):
    """The run's clusters, structures first then by resolution, one line each (report.json
    ``clusters``, as the engine printed them); [] for runs without verdicts."""
    import json
    from disca_engine.clustering.verdicts import STRUCTURE, summary_lines
    try:
        with open(os.path.join(engineDir, REPORT_JSON)) as fh:
            report = json.load(fh)
    except (OSError, ValueError):
        return []
    rows = report.get('clusters') or []
    if not rows:
        return []
    n = sum(r['verdict'] == STRUCTURE for r in rows)
    unit = 'Å' if report.get('voxel_size') else 'voxels'
    return (['%d of %d clusters look like structures (half-set FSC, null ratio, signal fraction, '
             'flatness):'
             % (n, len(rows))] + [line.strip() for line in summary_lines(rows, unit)])


def numbersText(numbers):
    """[1, 2, 3, 5] -> '1-3, 5'."""
    parts, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            parts.append(str(start) if start == n else '%d-%d' % (start, n))
            start = None
    return ', '.join(parts)


def voxelSizeOf(path):
    """Voxel size (Angstrom) in an MRC header, or None."""
    import mrcfile
    try:
        with mrcfile.mmap(path, mode='r', permissive=True) as mrc:
            vs = float(mrc.voxel_size.x)
        return vs if vs > 0 else None
    except Exception:
        return None


def volumeName(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem.replace('class_', 'cluster ')


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
        form.addParam('showVerdicts', params.LabelParam,
                      label='Which clusters are structures (verdicts, resolution)',
                      help='Each cluster sorted structures first, then by the resolution of its '
                           'average (half-set FSC at 0.143), with the reason of its verdict. '
                           'The export takes the structure-like ones by default.')
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
        form.addParam('showSlices', params.LabelParam,
                      label='Class averages and decoded centres: browsable slices',
                      help='Slices through each average (slider; positions in voxels and Å).')
        form.addParam('showClasses', params.LabelParam,
                      label="Class averages in tomo's viewer",
                      help="Needs xmipp's showj; without it the browsable slices open instead.")
        form.addParam('regenerate', params.LabelParam,
                      label='Regenerate the report (runs the engine)',
                      help='Rewrites extra/disca/report with "disca-engine report" (about a minute; '
                           'retrains the decoder).')

    def _getVisualizeDict(self):
        return {'showReport': self._showReport,
                'showVerdicts': self._showVerdicts,
                'showIterations': lambda p=None: self._showPngs('iterations', 'DISCA iterations'),
                'showEmbedding': lambda p=None: self._showPngs('embedding', 'DISCA embedding'),
                'showAverages': lambda p=None: self._showPngs('averages', 'DISCA averages'),
                'showMontage': self._showMontage,
                'showTomograms': lambda p=None: self._showPngs('tomograms', 'DISCA re-embedding'),
                'showSlices': self._showSlices,
                'showClasses': self._showClasses,
                'regenerate': self._regenerate}

    # ------------------------------------------------------------------ helpers
    def _message(self, msg, path=None):
        return [ConsoleMessageView(msg, 'DISCA', tkParent=self.getTkRoot(), path=path)]

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
    TAB_NAMES = {'iterations': 'Iterations', 'embedding': 'Embedding', 'averages': 'Averages',
                 'tomograms': 'Re-embedding'}

    def _tabs(self, engineDir, files):
        """Every tab of this run's window (pictures and browsable volumes)."""
        tabs = [ImageTab(self.TAB_NAMES[kind], files[kind])
                for kind in ('iterations', 'embedding', 'averages', 'tomograms') if files[kind]]
        volumes = [(volumeName(p), p) for p in files['averageVolumes']]
        volumes += [('decoded ' + volumeName(p), p) for p in files['decoded']]
        if volumes:
            tabs.append(VolumeTab('Average slices', volumes, voxelSizeOf(volumes[0][1])))
        maps = [(os.path.basename(p), p) for p in files['labelmaps']]
        if maps:
            tabs.append(VolumeTab('Label maps', maps, voxelSizeOf(maps[0][1])))
        return tabs

    def _resultsView(self, engineDir, files, select, extra=()):
        tabs = self._tabs(engineDir, files) + list(extra)
        return [ResultsView('disca-%s' % self.protocol.getObjId(),
                            'DISCA results: %s' % self.protocol.getRunName(), tabs, select,
                            tkParent=self.getTkRoot())]

    def _showReport(self, param=None):
        engineDir, files = self._files()
        if not files or not files['html']:
            return self._missing(engineDir, 'index.html')
        return [BrowserView(files['html'][0], tkParent=self.getTkRoot())]

    def _showVerdicts(self, param=None):
        engineDir = findEngineDir(self.protocol)
        lines = verdictLines(engineDir) if engineDir else []
        if not lines:
            return self._missing(engineDir, 'cluster verdicts (report.json "clusters"; runs of '
                                            'an older engine have none)')
        return self._message('\n'.join(lines), path=os.path.join(engineDir, REPORT_JSON))

    def _showPngs(self, kind, title=None):
        engineDir, files = self._files()
        if not files or not files[kind]:
            return self._missing(engineDir, '%s pictures' % kind)
        return self._resultsView(engineDir, files, self.TAB_NAMES[kind])

    def _showMontage(self, param=None):
        engineDir, files = self._files()
        n = self.clusterNumber.get()
        wanted = [p for p in (files or {}).get('clusters', [])
                  if os.path.basename(p) == 'cluster_%03d.png' % (n or 0)]
        if wanted:
            tab = ImageTab('Cluster %d' % n, wanted)
            return self._resultsView(engineDir, files, tab.name, [tab])
        existing = clusterNumbers(engineDir, files) if engineDir else []
        if existing and n not in existing:
            return self._message('Cluster %s does not exist: this run has clusters %s. '
                                 'Choose one of them.' % (n, numbersText(existing)))
        return self._missing(engineDir, 'montage of cluster %s' % n)

    def _showSlices(self, param=None):
        engineDir, files = self._files()
        if not files or not (files['averageVolumes'] or files['decoded']):
            return self._missing(engineDir, 'class averages (averages/class_NNN.mrc)')
        return self._showAverageSlices(engineDir, files)

    def _showAverageSlices(self, engineDir, files):
        return self._resultsView(engineDir, files, 'Average slices')

    def _showClasses(self, param=None):
        classes = getattr(self.protocol, 'classes', None)
        if classes is None:
            return self._message('The protocol has no output classes yet.')
        engineDir, files = self._files()
        if not hasDisplay():
            where = os.path.join(engineDir, 'averages') if engineDir else 'extra/disca/averages'
            return self._message('no display; class averages are MRC files in %s' % where)
        return [TomoClassesView(self, classes, engineDir, files)]

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


class TomoClassesView(View):
    """tomo's viewer of the classes; where it fails (pwem's showj needs xmipp, absent on
    many tomography installs) the plugin's own browsable slices of the averages instead."""

    def __init__(self, viewer, classes, engineDir, files):
        View.__init__(self)
        self.viewer, self.classes, self.engineDir, self.files = viewer, classes, engineDir, files
        self.fallback = None

    def getMessage(self):
        return "Class averages in tomo's viewer"

    def show(self):
        try:
            from tomo.viewers.viewers_data import TomoDataViewer
            tomoViewer = TomoDataViewer(project=self.viewer.getProject(),
                                        protocol=self.viewer.protocol,
                                        parent=self.viewer.getWindow())
            for view in tomoViewer._visualize(self.classes) or []:
                view.show()
        except Exception as exc:
            self.showFallback(exc)

    def showFallback(self, exc):
        if not self.files or not self.files['averageVolumes']:
            ConsoleMessageView("tomo's viewer failed (%s) and this run has no class averages "
                               'to show.' % exc, 'DISCA').show()
            return
        views = self.viewer._showAverageSlices(self.engineDir, self.files)
        views[0].show()
        self.fallback = views[0]
        ConsoleMessageView("tomo's viewer could not open the classes (%s: %s; it needs xmipp). "
                           'The class averages are shown as browsable slices in the DISCA '
                           'results window instead; the files are in:'
                           % (type(exc).__name__, exc), 'DISCA',
                           tkParent=self.viewer.getTkRoot(),
                           path=os.path.abspath(os.path.join(self.engineDir, 'averages'))).show()
