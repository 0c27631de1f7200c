# -*- coding: utf-8 -*-
"""One results window per run: its pictures in tabs and browsable slices of volumes.

``ResultsView`` opens (or raises) the window of a run and selects the asked tab, so the
viewer's entries never stack up windows. Volumes (class averages, decoded centres,
tomograms) are browsed with a slider, labelled in voxels and Angstrom; picks can be drawn
on tomogram slices. Without a display the view says where the files are.
"""
import os

import numpy as np

from pyworkflow.viewer import View

from .views import ConsoleMessageView, hasDisplay

AXES = ('z', 'y', 'x')
_WINDOWS = {}  # run key -> open ResultsWindow


class ImageTab:
    """A tab showing PNG pictures one under the other."""

    def __init__(self, name, paths):
        self.name, self.paths = name, [paths] if isinstance(paths, str) else list(paths)

    def files(self):
        return self.paths


class VolumeTab:
    """A tab browsing slices of volumes [(name, mrc path)] of ``voxelA`` Angstrom/voxel;
    ``markers``: {volume name: (xyz N x 3 voxel centres, radius in voxels)}."""

    def __init__(self, name, volumes, voxelA=None, markers=None):
        self.name, self.volumes, self.voxelA = name, list(volumes), voxelA
        self.markers = markers or {}

    def files(self):
        return [path for _, path in self.volumes]


def sliceCaption(axis, index, size, voxelA=None):
    """'z = 12 / 23 voxels (168.0 Å)': the slice position in voxels and in Angstrom."""
    text = '%s = %d / %d voxels' % (axis, index, size - 1)
    if voxelA:
        text += ' (%.1f Å)' % (index * voxelA)
    return text


def readSlice(path, axis, index):
    """One plane (2D float32) of an MRC volume, read through a memory map."""
    import mrcfile
    with mrcfile.mmap(path, mode='r', permissive=True) as mrc:
        data = mrc.data if mrc.data.ndim == 3 else mrc.data[None]
        index = int(np.clip(index, 0, data.shape[AXES.index(axis)] - 1))
        return np.asarray(np.take(data, index, axis=AXES.index(axis)), dtype=np.float32)


def volumeShape(path):
    import mrcfile
    with mrcfile.mmap(path, mode='r', permissive=True) as mrc:
        shape = mrc.data.shape
    return tuple(shape) if len(shape) == 3 else (1,) + tuple(shape)


def markersOnSlice(xyz, radius, axis, index):
    """(u, v, r) circles where spheres of ``radius`` at ``xyz`` cut the plane ``axis=index``
    (u, v: the plane's horizontal and vertical voxel coordinates)."""
    xyz = np.asarray(xyz, dtype=float).reshape(-1, 3)
    a = 2 - AXES.index(axis)            # column of this axis in xyz
    u, v = [c for c in (0, 1, 2) if c != a]
    d = np.abs(xyz[:, a] - index)
    keep = d < radius
    return [(xyz[i, u], xyz[i, v], float(np.sqrt(radius ** 2 - d[i] ** 2)))
            for i in np.flatnonzero(keep)]


class SliceBrowser:
    """Volume chooser, axis buttons, slider and a matplotlib canvas in a Tk frame."""

    def __init__(self, master, tab):
        import tkinter as tk
        from tkinter import ttk
        from matplotlib.figure import Figure
        from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg
        self.tab = tab
        self.paths = dict(tab.volumes)
        bar = ttk.Frame(master)
        bar.pack(side=tk.TOP, fill=tk.X, padx=5, pady=3)
        self.volume = tk.StringVar(value=tab.volumes[0][0])
        ttk.Label(bar, text='Volume').pack(side=tk.LEFT)
        self.combo = ttk.Combobox(bar, textvariable=self.volume, state='readonly',
                                  values=[n for n, _ in tab.volumes],
                                  width=max(12, min(40, max(len(n) for n, _ in tab.volumes))))
        self.combo.pack(side=tk.LEFT, padx=3)
        self.combo.bind('<<ComboboxSelected>>', lambda e: self.reset())
        self.axis = tk.StringVar(value='z')
        for ax in AXES:
            ttk.Radiobutton(bar, text=ax, value=ax, variable=self.axis,
                            command=self.reset).pack(side=tk.LEFT)
        self.caption = ttk.Label(bar, text='')
        self.caption.pack(side=tk.LEFT, padx=10)
        self.scale = tk.Scale(master, orient=tk.HORIZONTAL, from_=0, to=1, showvalue=False,
                              command=lambda v: self.draw())
        self.scale.pack(side=tk.BOTTOM, fill=tk.X, padx=5)
        self.fig = Figure(figsize=(6, 5), dpi=100)
        self.canvas = FigureCanvasTkAgg(self.fig, master=master)
        self.canvas.get_tk_widget().pack(side=tk.TOP, fill=tk.BOTH, expand=True)
        self.reset()

    def reset(self):
        """New volume or axis: slider over that axis, starting in the middle."""
        self.shape = volumeShape(self.paths[self.volume.get()])
        n = self.shape[AXES.index(self.axis.get())]
        self.scale.config(to=max(0, n - 1))
        self.scale.set(n // 2)
        self.draw()

    def draw(self):
        from matplotlib.patches import Circle
        name, axis = self.volume.get(), self.axis.get()
        index = int(self.scale.get())
        img = readSlice(self.paths[name], axis, index)
        lo, hi = np.percentile(img, [1, 99])
        self.fig.clear()
        ax = self.fig.subplots()
        ax.imshow(img, cmap='gray', vmin=lo, vmax=hi if hi > lo else lo + 1, origin='lower',
                  interpolation='nearest')
        if name in self.tab.markers:
            xyz, radius = self.tab.markers[name]
            for u, v, r in markersOnSlice(xyz, radius, axis, index):
                ax.add_patch(Circle((u, v), r, fill=False, color='yellow', lw=1))
        plane = [a for a in AXES if a != axis]
        ax.set_xlabel('%s (voxels)' % plane[1])
        ax.set_ylabel('%s (voxels)' % plane[0])
        size = self.shape[AXES.index(axis)]
        caption = sliceCaption(axis, index, size, self.tab.voxelA)
        ax.set_title('%s: %s' % (name, caption), fontsize=9)
        self.caption.config(text=caption)
        self.fig.tight_layout()
        self.canvas.draw()


class ResultsWindow:
    """A Tk window with one notebook tab per ImageTab/VolumeTab."""

    def __init__(self, title, tabs, parent=None):
        import tkinter as tk
        from tkinter import ttk
        root = parent or tk._default_root or tk.Tk()
        self.win = tk.Toplevel(root)
        self.win.title(title)
        self.win.geometry('1000x800')
        self.notebook = ttk.Notebook(self.win)
        self.notebook.pack(fill=tk.BOTH, expand=True)
        self.tabs, self.frames, self._images, self.browsers = [], {}, [], []
        for tab in tabs:
            self.addTab(tab)

    def alive(self):
        try:
            return bool(self.win.winfo_exists())
        except Exception:
            return False

    def addTab(self, tab):
        from tkinter import ttk
        frame = ttk.Frame(self.notebook)
        self.notebook.add(frame, text=tab.name)
        if isinstance(tab, VolumeTab):
            self.browsers.append(SliceBrowser(frame, tab))
        else:
            self._fillImages(frame, tab.paths)
        self.tabs.append(tab)
        self.frames[tab.name] = frame
        return frame

    def select(self, name):
        if name in self.frames:
            self.notebook.select(self.frames[name])
        self.win.deiconify()
        self.win.lift()

    def _fillImages(self, frame, paths):
        """PNG files stacked in a scrollable canvas (Tk reads PNG itself)."""
        import tkinter as tk
        canvas = tk.Canvas(frame, bg='white')
        vbar = tk.Scrollbar(frame, orient=tk.VERTICAL, command=canvas.yview)
        hbar = tk.Scrollbar(frame, orient=tk.HORIZONTAL, command=canvas.xview)
        canvas.configure(yscrollcommand=vbar.set, xscrollcommand=hbar.set)
        vbar.pack(side=tk.RIGHT, fill=tk.Y)
        hbar.pack(side=tk.BOTTOM, fill=tk.X)
        canvas.pack(side=tk.LEFT, fill=tk.BOTH, expand=True)
        y, width = 0, 0
        for path in paths:
            img = tk.PhotoImage(file=path)
            self._images.append(img)  # Tk forgets images without a Python reference
            canvas.create_image(0, y, image=img, anchor='nw')
            canvas.create_text(5, y + 2, text=os.path.basename(path), anchor='nw',
                               fill='gray40')
            y += img.height() + 10
            width = max(width, img.width())
        canvas.configure(scrollregion=(0, 0, width, y))


def openResults(key, title, tabs, select=None, parent=None):
    """Open the window of run ``key`` (or reuse it, adding missing tabs) at tab ``select``."""
    win = _WINDOWS.get(key)
    if win is None or not win.alive():
        win = _WINDOWS[key] = ResultsWindow(title, tabs, parent)
    else:
        for tab in tabs:
            if tab.name not in win.frames:
                win.addTab(tab)
    win.select(select or tabs[0].name)
    return win


class ResultsView(View):
    """Shows tabs in the run's single results window; headless: says where the files are."""

    def __init__(self, key, title, tabs, select=None, tkParent=None):
        View.__init__(self)
        self.key, self.title, self.tabs, self.selected = key, title, list(tabs), select
        self.tkParent = tkParent
        self.window = None

    def getPaths(self):
        """Files of the selected tab (all tabs when none is selected)."""
        chosen = [t for t in self.tabs if t.name == self.selected] or self.tabs
        return [p for t in chosen for p in t.files()]

    def getTabNames(self):
        return [t.name for t in self.tabs]

    def getMessage(self):
        return '%s: %s' % (self.title, ', '.join(self.getPaths()))

    def show(self):
        if not hasDisplay():
            ConsoleMessageView('no display; open the file(s): ' + ', '.join(self.getPaths()),
                               self.title).show()
            return
        try:
            self.window = openResults(self.key, self.title, self.tabs, self.selected,
                                      self.tkParent)
        except Exception as exc:
            ConsoleMessageView('could not open a window (%s); files: %s'
                               % (exc, ', '.join(self.getPaths())), self.title).show()
