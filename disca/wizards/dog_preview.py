# -*- coding: utf-8 -*-
"""Preview of DoG picks on one slice of a tomogram, for choosing the diameter and threshold.

The numbers come from ``disca_engine.picking.dog_preview`` (a slab around the slice only,
so it is quick on big tomograms). With a display the wizard opens a Tk window (tomogram,
picks and the score histogram with the threshold; diameter, threshold and slice are
editable and can be copied back to the form). Without a display it writes a PNG and says
where.
"""
import os

from pwem.wizards import EmWizard

from .. import constants as C
from ..protocols import DiscaProtDogPicking
from ..protocols.form_values import isAuto, parseOptional
from ..protocols.picking_utils import (MAX_DIAMETER_FRACTION, pickingDefaults,
                                       suggestedBoxSize)


def checkDiameter(diameterA, samplingRate, dims):
    """ValueError unless the diameter is positive and at most MAX_DIAMETER_FRACTION of the
    tomogram's smallest side (a typo like 400200 Å would give a box of thousands)."""
    if not diameterA or diameterA <= 0:
        raise ValueError('The particle diameter must be a positive number of Å.')
    limit = MAX_DIAMETER_FRACTION * min(dims) * samplingRate
    if diameterA > limit:
        raise ValueError('A diameter of %g Å is more than half the tomogram (%g Å along its '
                         'smallest side): check the value.' % (diameterA, min(dims) * samplingRate))


def followBox(boxText, oldDiameter, newDiameter, samplingRate):
    """The box field after the diameter changed: 'auto' stays (it follows by itself); a box
    given in voxels is rescaled with the diameter (rounded to even, at least MIN_BOX)."""
    if isAuto(boxText) or not oldDiameter:
        return boxText
    box = parseOptional(boxText, int, 'Box size', autoBelow=0)
    if box is None:
        return boxText
    if box == suggestedBoxSize(oldDiameter, samplingRate):
        return str(suggestedBoxSize(newDiameter, samplingRate))
    scaled = int(round(box * newDiameter / oldDiameter))
    return str(max(C.MIN_BOX, scaled + scaled % 2))


def previewFor(tomoFile, voxel_A, diameter_A, z=None, thresholdSigma=None, threshold=None,
               contrast=C.CONTRAST_DARK, minDistance=None, border=None, sigmaRatio=1.1,
               binning=1):
    """Run the engine's one-slice preview with form-style values; returns its Preview."""
    from disca_engine.picking import dog_preview
    kw = pickingDefaults(diameter_A, contrast,
                         C.THRESHOLD_MANUAL if threshold is not None else C.THRESHOLD_AUTO,
                         3.0 if thresholdSigma is None else thresholdSigma, threshold,
                         minDistance, None, border, sigmaRatio, binning)
    return dog_preview(tomoFile, voxel_A, z=z, **kw)


def drawPreview(fig, preview, title=''):
    """Draw the slice with pick circles and the score histogram on a matplotlib figure."""
    fig.clear()
    axImg, axHist = fig.subplots(1, 2, gridspec_kw={'width_ratios': [3, 2]})
    img = preview.tomogram_slice
    lo, hi = (float(v) for v in _percentiles(img))
    axImg.imshow(img, cmap='gray', vmin=lo, vmax=hi, origin='lower')
    p = preview.picks.params
    radius = p.particle_diameter_A / 2.0 / p.voxel_A / p.bin  # in displayed (binned) voxels
    for x, y in preview.picks.xyz[:, :2] / p.bin:
        axImg.add_patch(_circle((x, y), radius))
    axImg.set_title('%s%d picks near this slice' % (title + ': ' if title else '',
                                                    len(preview.picks)), fontsize=9)
    axImg.set_xticks([])
    axImg.set_yticks([])
    counts, edges = preview.histogram
    if len(edges) > 2:
        drawScoreBars(axHist, counts, edges)
    axHist.axvline(preview.threshold, color='r', label='threshold %.3g' % preview.threshold)
    axHist.set_yscale('log')
    axHist.set_xlabel('DoG score of local maxima')
    axHist.set_ylabel('count')
    axHist.legend(fontsize=8)
    fig.tight_layout()


def drawScoreBars(ax, counts, edges):
    """Bars of the preview histogram; the engine's last, wider bin (outliers beyond the bulk,
    e.g. gold) is not drawn but counted in a note."""
    import numpy as np
    counts, edges = np.asarray(counts), np.asarray(edges)
    widths = np.diff(edges)
    outliers = widths[-1] > 1.5 * widths[0]
    n = len(counts) - 1 if outliers else len(counts)
    ax.bar(edges[:n], counts[:n], width=widths[:n], align='edge', color='0.6')
    if outliers and counts[-1]:
        ax.annotate('%d maxima beyond\n(up to %.3g)' % (counts[-1], edges[-1]), xy=(1, 1),
                    xycoords='axes fraction', ha='right', va='top', fontsize=8,
                    color='tab:red', xytext=(-4, -28), textcoords='offset points')


def writePreviewPng(path, preview, title=''):
    """Headless: save the preview figure as a PNG; returns the path."""
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    fig = Figure(figsize=(10, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    drawPreview(fig, preview, title)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    return path


def _percentiles(img):
    import numpy as np
    return np.percentile(img, [1, 99])


def _circle(xy, radius):
    from matplotlib.patches import Circle
    return Circle(xy, radius, fill=False, edgecolor='yellow', linewidth=1)


def hasDisplay():
    return bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


class DiscaDogPreviewWizard(EmWizard):
    """Preview the DoG picks of the current parameters on one slice of a tomogram."""
    _targets = [(DiscaProtDogPicking, ['thresholdSigma', 'threshold', 'particleDiameter'])]

    def show(self, form, *params):
        from pyworkflow.gui import dialog
        prot = form.protocol
        tomos = prot.inputTomograms.get()
        if tomos is None or tomos.getSize() == 0 or not tomos.getSamplingRate():
            dialog.showWarning('DoG preview', 'Select tomograms (with a sampling rate) first.',
                               form.root)
            return
        items = [(t.getTsId() or str(t.getObjId()), os.path.abspath(t.getFileName()))
                 for t in tomos.iterItems()]
        if not hasDisplay():
            name, path = items[0]
            prev = self._preview(prot, path, tomos.getSamplingRate(), None)
            png = os.path.abspath(prot._getTmpPath('dog_preview_%s.png' % name)
                                  if prot.getWorkingDir() else 'dog_preview_%s.png' % name)
            writePreviewPng(png, prev, name)
            print('DoG preview written to %s' % png)
            return
        return PreviewWindow(form, self, items, tomos.getSamplingRate())

    @staticmethod
    def _preview(prot, path, sr, z, diameter=None, thresholdSigma=None, threshold=None):
        """Preview with the form's values; a manual threshold not given yet (auto) previews
        the automatic threshold, whose value the window then shows."""
        manual = prot.thresholdMode.get() == C.THRESHOLD_MANUAL
        if threshold is None and thresholdSigma is None:
            threshold = (parseOptional(prot.threshold.get(), float, 'Threshold')
                         if manual else None)
            thresholdSigma = None if threshold is not None else prot.thresholdSigma.get()
        return previewFor(path, sr, diameter or prot.particleDiameter.get(), z=z,
                          thresholdSigma=thresholdSigma, threshold=threshold,
                          contrast=prot.contrast.get(), minDistance=prot.minDistance.get(),
                          border=prot.border.get(), sigmaRatio=prot.sigmaRatio.get(),
                          binning=prot.binning.get())


class PreviewWindow:
    """Tk window: tomogram/slice choice, diameter and threshold entries, live figure."""

    def __init__(self, form, wizard, items, samplingRate):
        import tkinter as tk
        from tkinter import ttk
        from matplotlib.figure import Figure
        from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg
        self.form, self.wizard, self.items, self.sr = form, wizard, dict(items), samplingRate
        prot = form.protocol
        self.manual = prot.thresholdMode.get() == C.THRESHOLD_MANUAL
        self.win = tk.Toplevel(form.root)
        self.win.title('DISCA - DoG picking preview')
        bar = ttk.Frame(self.win)
        bar.pack(side=tk.TOP, fill=tk.X, padx=5, pady=5)
        self.tomo = tk.StringVar(value=items[0][0])
        ttk.Label(bar, text='Tomogram').pack(side=tk.LEFT)
        ttk.Combobox(bar, textvariable=self.tomo, values=[n for n, _ in items], width=18,
                     state='readonly').pack(side=tk.LEFT)
        self.z = tk.StringVar(value='')
        self.diameter = tk.StringVar(value=str(prot.particleDiameter.get()))
        self.startDiameter = prot.particleDiameter.get()
        thr = prot.threshold.get() if self.manual else prot.thresholdSigma.get()
        # a manual threshold not given yet starts at the automatic one (set by update())
        self.thr = tk.StringVar(value='' if self.manual and isAuto(thr) else str(thr))
        self.dims = self._dims(form.protocol)
        for label, var in (('Slice z (empty: middle)', self.z), ('Diameter (Å)', self.diameter),
                           ('Threshold (absolute)' if self.manual else 'Threshold (sigmas)',
                            self.thr)):
            ttk.Label(bar, text=' ' + label).pack(side=tk.LEFT)
            ttk.Entry(bar, textvariable=var, width=8).pack(side=tk.LEFT)
        ttk.Button(bar, text='Update', command=self.update).pack(side=tk.LEFT, padx=5)
        ttk.Button(bar, text='Use these values', command=self.apply).pack(side=tk.LEFT)
        self.fig = Figure(figsize=(10, 4.5), dpi=100)
        self.canvas = FigureCanvasTkAgg(self.fig, master=self.win)
        self.canvas.get_tk_widget().pack(side=tk.TOP, fill=tk.BOTH, expand=True)
        self.status = ttk.Label(self.win, text='')
        self.status.pack(side=tk.BOTTOM, fill=tk.X)
        self.update()

    @staticmethod
    def _dims(prot):
        dims = [t.getDim() for t in prot.inputTomograms.get().iterItems() if t.getDim()]
        return min(dims, key=min) if dims else None

    def update(self):
        try:
            z = int(self.z.get()) if self.z.get().strip() else None
            if self.dims:
                checkDiameter(float(self.diameter.get()), self.sr, self.dims)
            thr = float(self.thr.get()) if self.thr.get().strip() else None
            prev = self.wizard._preview(
                self.form.protocol, self.items[self.tomo.get()], self.sr, z,
                diameter=float(self.diameter.get()),
                threshold=thr if self.manual else None,
                thresholdSigma=None if self.manual else thr)
            if thr is None and self.manual:  # first look in manual mode
                prev = self.wizard._preview(
                    self.form.protocol, self.items[self.tomo.get()], self.sr, z,
                    diameter=float(self.diameter.get()),
                    thresholdSigma=self.form.protocol.thresholdSigma.get())
                self.thr.set('%.4g' % prev.threshold)
        except Exception as exc:  # show the engine's one-line message, keep the window
            self.status.config(text='Error: %s' % exc)
            return
        drawPreview(self.fig, prev, self.tomo.get())
        self.canvas.draw()
        self.status.config(text='threshold %.4g (background median %.4g, sigma %.4g)'
                           % (prev.threshold, prev.picks.background_median,
                              prev.picks.background_sigma))

    def apply(self):
        """Copy diameter and threshold to the form; a box given in voxels follows the
        diameter. A diameter out of bounds is refused with a message."""
        try:
            diameter = float(self.diameter.get())
            if self.dims:
                checkDiameter(diameter, self.sr, self.dims)
            thr = float(self.thr.get())
        except ValueError as exc:
            self.status.config(text='Error: %s' % exc)
            return
        prot = self.form.protocol
        self.form.setVar('particleDiameter', diameter)
        self.form.setVar('threshold' if self.manual else 'thresholdSigma', thr)
        self.form.setVar('boxSize', followBox(prot.boxSize.get(), self.startDiameter, diameter,
                                              self.sr))
        self.win.destroy()
