# -*- coding: utf-8 -*-
"""Viewer of DISCA's DoG picking: score histogram with the threshold, and the picks drawn
on slices of a tomogram.

The plotting functions are plain functions writing PNGs (usable and testable without a
display); the viewer collects the data from the protocol and shows the PNGs, or says where
they are when there is no display.
"""
import os

import numpy as np

import pyworkflow.protocol.params as params
from pyworkflow.viewer import ProtocolViewer, DESKTOP_TKINTER

from .views import ConsoleMessageView
from .window import ImageTab, ResultsView, VolumeTab

def _pickingProtocols():
    try:
        from disca.protocols.protocol_dog_picking import DiscaProtDogPicking
        return [DiscaProtDogPicking]
    except ImportError:
        return []


def _figure(**kwargs):
    """A pyplot-free Figure: no GUI backend, no global state, works headless."""
    from matplotlib.figure import Figure
    return Figure(**kwargs)


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + '.tmp.png'
    fig.savefig(tmp, dpi=110, bbox_inches='tight')
    os.replace(tmp, path)
    return path


def readThreshold(starPath):
    """The DoG threshold of a picking, read from the JSON the engine writes beside the coords
    STAR (``<name>.pick.json``); None when there is none (e.g. picks made by another tool)."""
    from disca_engine.picking import read_pick_stats
    if not starPath:
        return None
    stats = read_pick_stats(starPath)
    value = (stats or {}).get('threshold')
    return float(value) if value is not None else None


def robustRange(scores, thresholds=(), fence=3.0):
    """x-range (lo, hi) of the bulk of the scores, widened to show every threshold: Tukey's
    far fences (quartiles -/+ ``fence`` x the interquartile range) clipped to the data, so a
    few gold beads 100x the background do not squash the histogram."""
    scores = np.asarray(scores, dtype=float)
    scores = scores[np.isfinite(scores)]
    if not len(scores):
        return 0.0, 1.0
    q1, q3 = np.percentile(scores, [25, 75])
    iqr = q3 - q1
    if iqr > 0:
        lo, hi = max(scores.min(), q1 - fence * iqr), min(scores.max(), q3 + fence * iqr)
    else:
        lo, hi = (float(v) for v in np.percentile(scores, [0.5, 99.5]))
    lo, hi = float(lo), float(hi)
    for t in thresholds:
        if t is not None and np.isfinite(t):
            lo, hi = min(lo, t), max(hi, t)
    if hi <= lo:
        hi = lo + max(abs(lo), 1.0) * 0.1
    pad = 0.04 * (hi - lo)
    return lo - pad, hi + pad


def plotScoreHistogram(scores, path, thresholds=None, title='DoG scores'):
    """Histogram of pick scores (log counts, robust x-range; picks beyond it are counted and
    marked at the edges) with a vertical line per threshold ({label: value})."""
    import matplotlib
    scores = np.asarray(scores, dtype=float)
    thresholds = {k: v for k, v in (thresholds or {}).items()
                  if v is not None and np.isfinite(v)}
    lo, hi = robustRange(scores, thresholds.values())
    inside = scores[(scores >= lo) & (scores <= hi)]
    above, below = scores[scores > hi], scores[scores < lo]
    fig = _figure(figsize=(6.4, 3.9))
    ax = fig.subplots()
    bins = int(np.clip(2 * np.sqrt(max(len(inside), 1)), 30, 100))
    ax.hist(inside, bins=bins, range=(lo, hi), color='0.55', edgecolor='0.3', lw=0.3)
    ax.set_yscale('log')
    ax.set_xlim(lo, hi)
    colors = matplotlib.colormaps['tab10']
    for i, (label, value) in enumerate(sorted(thresholds.items())):
        ax.axvline(value, color=colors(i % 10 if len(thresholds) > 1 else 3), lw=2, ls='--',
                   label='threshold %s = %.4g' % (label, value) if label else
                   'threshold = %.4g' % value)
    for side, out, x, align in (('above', above, hi, 'right'), ('below', below, lo, 'left')):
        if len(out):  # outliers (gold, carbon edges): counted and marked, not plotted
            ax.annotate('%d picks %s\n(%s %.3g)' % (len(out), side, 'max' if side == 'above'
                                                    else 'min', out.max() if side == 'above'
                                                    else out.min()),
                        xy=(x, 1), xycoords=('data', 'axes fraction'), ha=align, va='top',
                        fontsize=8, color='tab:red',
                        bbox=dict(boxstyle='round', fc='white', ec='tab:red', lw=0.6))
    if thresholds:
        ax.legend(fontsize=8, loc='center right')
    ax.set_xlabel('DoG score (_rlnAutopickFigureOfMerit; higher = stronger blob)')
    ax.set_ylabel('picks (log scale)')
    ax.set_title('%s (%d picks)' % (title, len(scores)))
    return _save(fig, path)


def _busiestPlane(values, size, radius):
    grid = np.arange(size)
    if len(values) == 0:
        return size // 2
    area = np.clip(radius ** 2 - (grid[:, None] - np.asarray(values)[None, :]) ** 2, 0, None).sum(1)
    return int(np.argmax(area)) if area.max() > 0 else size // 2


def plotPicksOnTomogram(tomoPath, xyz, radius, path, scores=None, title=None, slab=5):
    """xy/xz/yz slabs through the planes crossing most picks; picks as circles (radius in
    voxels) coloured by score. ``xyz``: N x 3, 0-based voxel centres."""
    import matplotlib
    import mrcfile
    from matplotlib.patches import Circle
    xyz = np.asarray(xyz, dtype=float).reshape(-1, 3)
    zyx = xyz[:, ::-1]
    with mrcfile.mmap(tomoPath, mode='r', permissive=True) as m:
        vol = m.data
        shape = vol.shape
        planes = [_busiestPlane(zyx[:, a], shape[a], radius) for a in range(3)]
        imgs = []
        for a in range(3):
            lo = max(0, planes[a] - slab // 2)
            hi = min(shape[a], lo + slab)
            imgs.append(np.asarray(np.take(vol, range(lo, hi), axis=a), dtype=np.float32).mean(a))
    cmap = matplotlib.colormaps['viridis']
    s = np.asarray(scores, dtype=float) if scores is not None and len(scores) else np.zeros(len(xyz))
    # colour scale on the 2-98 percentiles so a few very strong picks (gold) do not flatten it
    lo, hi = (np.percentile(s, [2, 98]) if len(s) else (0.0, 1.0))
    norm = matplotlib.colors.Normalize(lo, hi if hi > lo else lo + 1)
    views = [('xy', 0, 1, 2), ('xz', 1, 0, 2), ('yz', 2, 0, 1)]
    widths = [shape[2], shape[2], shape[1]]
    height = min(9.0, max(3.5, 12.0 * max(shape[0], shape[1]) / sum(widths) + 0.9))
    fig = _figure(figsize=(13, height))
    axes = fig.subplots(1, 3, gridspec_kw={'width_ratios': widths})
    for ax, (name, a, r, c), img in zip(axes, views, imgs):
        step = max(1, int(np.ceil(max(img.shape) / 1024.0)))
        lo, hi = np.percentile(img[::step, ::step], [1, 99])
        ax.imshow(img[::step, ::step], cmap='gray', vmin=lo, vmax=hi, origin='lower',
                  extent=(-0.5, shape[c] - 0.5, -0.5, shape[r] - 0.5), interpolation='nearest')
        d = np.abs(zyx[:, a] - planes[a])
        for p in np.flatnonzero(d < radius):
            ax.add_patch(Circle((zyx[p, c], zyx[p, r]), np.sqrt(radius ** 2 - d[p] ** 2),
                                    fill=False, lw=1.2, color=cmap(norm(s[p]))))
        ax.set_title('%s slab at %s = %d (%d planes)' % (name, 'zyx'[a], planes[a], slab), fontsize=9)
        ax.set_xlabel('%s (voxels)' % 'xyz'[2 - c], fontsize=8)
        ax.set_ylabel('%s (voxels)' % 'xyz'[2 - r], fontsize=8)
    if scores is not None and len(scores):
        sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(sm, ax=list(axes), fraction=0.02, pad=0.01, label='DoG score')
    fig.suptitle(title or '%s: %d picks' % (os.path.basename(tomoPath), len(xyz)), fontsize=10)
    return _save(fig, path)


class DiscaPickingViewer(ProtocolViewer):
    """Score histogram with the threshold, and picks on slices of a chosen tomogram."""
    _label = 'DISCA DoG picking results'
    _targets = _pickingProtocols()
    _environments = [DESKTOP_TKINTER]

    def _defineParams(self, form):
        form.addSection(label='Visualization')
        form.addParam('tomogram', params.EnumParam, choices=self._tomoKeys() or ['(none)'],
                      default=0, label='Tomogram',
                      help='Tomogram whose scores and picks are shown.')
        form.addParam('allTomograms', params.BooleanParam, default=False,
                      label='Histogram of all tomograms?')
        form.addParam('showHistogram', params.LabelParam, label='Score histogram with threshold')
        form.addParam('showPicks', params.LabelParam, label='Picks on tomogram slabs (xy, xz, yz)')
        form.addParam('showSlices', params.LabelParam,
                      label='Browse tomogram slices with the picks',
                      help='Every tomogram, any slice (slider; positions in voxels and Å), picks '
                           'circled at half the box size.')

    def _getVisualizeDict(self):
        return {'showHistogram': self._showHistogram, 'showPicks': self._showPicks,
                'showSlices': self._showSlices}

    # ------------------------------------------------------------------ data
    def _coordinates(self):
        return getattr(self.protocol, 'coordinates', None)

    def _tomograms(self):
        """[(key, tomogram)] of the picked tomograms."""
        from disca.protocols.picking_utils import itemKey
        coords = self._coordinates()
        if coords is not None:
            tomos = coords.getPrecedents()
        elif getattr(self.protocol, 'inputTomograms', None) is not None and self.protocol.inputTomograms.get():
            tomos = self.protocol.inputTomograms.get()
        else:
            return []
        return [(itemKey(t), t.clone()) for t in tomos.iterItems()]

    def _tomoKeys(self):
        try:
            return [k for k, _ in self._tomograms()]
        except Exception:
            return []

    def _chosen(self):
        tomos = self._tomograms()
        if not tomos:
            return None, None
        index = min(int(self.tomogram.get() or 0), len(tomos) - 1)
        return tomos[index]

    def picks(self, tomo):
        """(N x 3 xyz voxel centres, scores) of one tomogram from the output set."""
        from tomo.constants import BOTTOM_LEFT_CORNER
        xyz, scores = [], []
        for coord in self._coordinates().iterCoordinates(volume=tomo):
            xyz.append(coord.getPosition(BOTTOM_LEFT_CORNER))
            scores.append(coord.getScore())
        return np.array(xyz, dtype=float).reshape(-1, 3), np.array(scores, dtype=float)

    def threshold(self, key):
        star = self.protocol.coordsFile(key) if hasattr(self.protocol, 'coordsFile') else None
        return readThreshold(star)

    def _outPath(self, name):
        folder = self.getProject().getTmpPath() if self.getProject() else self.protocol._getTmpPath()
        return os.path.abspath(os.path.join(folder, 'disca_viewer_%s_%s' % (self.protocol.getObjId(), name)))

    # ------------------------------------------------------------------ views
    def _message(self, msg):
        return [ConsoleMessageView(msg, 'DISCA picking', tkParent=self.getTkRoot())]

    def _showHistogram(self, param=None):
        if self._coordinates() is None:
            return self._message('The protocol has no output coordinates yet.')
        if self.allTomograms.get():
            scores = np.array([c.getScore() for c in self._coordinates().iterCoordinates()], float)
            thresholds = {k: self.threshold(k) for k, _ in self._tomograms()}
            name, title = 'scores_all.png', 'DoG scores, all tomograms'
        else:
            key, tomo = self._chosen()
            _, scores = self.picks(tomo)
            thresholds = {'': self.threshold(key)}
            name, title = 'scores_%s.png' % key, 'DoG scores of %s' % key
        path = plotScoreHistogram(scores, self._outPath(name),
                                  {k: v for k, v in thresholds.items() if v is not None}, title)
        return self._resultsView(ImageTab('Scores', path))

    def _showPicks(self, param=None):
        if self._coordinates() is None:
            return self._message('The protocol has no output coordinates yet.')
        key, tomo = self._chosen()
        xyz, scores = self.picks(tomo)
        box = self._coordinates().getBoxSize() or 24
        path = plotPicksOnTomogram(tomo.getFileName(), xyz, box / 2.0,
                                   self._outPath('picks_%s.png' % key), scores,
                                   '%s: %d picks (circles: half box, colour: DoG score)' % (key, len(xyz)))
        return self._resultsView(ImageTab('Picks %s' % key, path))

    def _showSlices(self, param=None):
        if self._coordinates() is None:
            return self._message('The protocol has no output coordinates yet.')
        return self._resultsView(self._slicesTab())

    def _slicesTab(self):
        """Browsable slices of every picked tomogram with its picks circled (half box)."""
        box = self._coordinates().getBoxSize() or 24
        volumes, markers = [], {}
        for key, tomo in self._tomograms():
            volumes.append((key, os.path.abspath(tomo.getFileName())))
            markers[key] = (self.picks(tomo)[0], box / 2.0)
        return VolumeTab('Tomogram slices', volumes, self._coordinates().getSamplingRate(),
                         markers)

    def _resultsView(self, tab):
        return [ResultsView('disca-pick-%s' % self.protocol.getObjId(),
                            'DISCA picking: %s' % self.protocol.getRunName(), [tab], tab.name,
                            tkParent=self.getTkRoot())]
