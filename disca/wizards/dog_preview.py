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
from ..protocols.picking_utils import pickingDefaults


def previewFor(tomoFile, voxel_A, diameter_A, z=None, thresholdSigma=None, threshold=None,
               contrast=C.CONTRAST_DARK, minDistance=-1, border=-1, sigmaRatio=1.1,
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
    if len(edges) > 1:
        axHist.bar(edges[:-1], counts, width=edges[1] - edges[0], align='edge', color='0.6')
    axHist.axvline(preview.threshold, color='r', label='threshold %.3g' % preview.threshold)
    axHist.set_yscale('log')
    axHist.set_xlabel('DoG score of local maxima')
    axHist.set_ylabel('count')
    axHist.legend(fontsize=8)
    fig.tight_layout()


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
        PreviewWindow(form, self, items, tomos.getSamplingRate())

    @staticmethod
    def _preview(prot, path, sr, z, diameter=None, thresholdSigma=None, threshold=None):
        manual = prot.thresholdMode.get() == C.THRESHOLD_MANUAL
        if threshold is None and thresholdSigma is None:
            threshold = prot.threshold.get() if manual else None
            thresholdSigma = None if manual else prot.thresholdSigma.get()
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
        thr = prot.threshold.get() if self.manual else prot.thresholdSigma.get()
        self.thr = tk.StringVar(value=str(thr))
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

    def update(self):
        try:
            z = int(self.z.get()) if self.z.get().strip() else None
            thr = float(self.thr.get())
            prev = self.wizard._preview(
                self.form.protocol, self.items[self.tomo.get()], self.sr, z,
                diameter=float(self.diameter.get()),
                threshold=thr if self.manual else None,
                thresholdSigma=None if self.manual else thr)
        except Exception as exc:  # show the engine's one-line message, keep the window
            self.status.config(text='Error: %s' % exc)
            return
        drawPreview(self.fig, prev, self.tomo.get())
        self.canvas.draw()
        self.status.config(text='threshold %.4g (background median %.4g, sigma %.4g)'
                           % (prev.threshold, prev.picks.background_median,
                              prev.picks.background_sigma))

    def apply(self):
        self.form.setVar('particleDiameter', float(self.diameter.get()))
        self.form.setVar('threshold' if self.manual else 'thresholdSigma', float(self.thr.get()))
        self.win.destroy()
