# -*- coding: utf-8 -*-
"""Export wizard: pick the clusters to keep from a list showing, for each, its verdict
(structure / junk-like) and resolution, its size, mean posterior and a thumbnail of its
average (central slices); structures first, then by resolution."""
import os

import numpy as np
from pwem.wizards import EmWizard
from pyworkflow.gui import dialog

from ..protocols import DiscaProtExport
from ..protocols.cluster_verdicts import classRows, hasVerdicts, sortKey, structureNumbers
from ..protocols.protocol_export import POSTERIOR_ATTR
from ..viewers.viewer_cluster import numbersText

THUMB = 72  # pixels


def clusterRows(classes):
    """[(number, size, verdict, resolution, reason, mean posterior or None, average file or
    None)] of a set of classes, structures first, then by resolution (``classRows``)."""
    rows = []
    for cls in classes.iterItems(orderBy='id'):
        rep = cls.getRepresentative() if cls.hasRepresentative() else None
        path = rep.getFileName() if rep is not None and rep.getFileName() else None
        rows.append([cls.getObjId(), cls.getSize(), None,
                     path if path and os.path.isfile(path) else None])
    for row in rows:  # a second pass: iterating members inside iterItems reuses objects
        posts = [getattr(s, POSTERIOR_ATTR).get() for s in classes[row[0]].iterItems()
                 if getattr(s, POSTERIOR_ATTR, None) is not None]
        row[2] = float(np.mean(posts)) if posts else None
    verdicts = {r[0]: r[2:] for r in classRows(classes)}
    out = [(n, size) + tuple(verdicts.get(n, (None, None, ''))) + (post, path)
           for n, size, post, path in rows]
    return sorted(out, key=sortKey)


def thumbnail(path, size=THUMB):
    """uint8 image (size x size) of the central z slices of a volume, contrast 1-99%."""
    import mrcfile
    with mrcfile.mmap(path, mode='r', permissive=True) as mrc:
        vol = np.asarray(mrc.data, dtype=np.float32)
    if vol.ndim == 3:
        mid = vol.shape[0] // 2
        img = vol[max(0, mid - 1):mid + 2].mean(axis=0)
    else:
        img = vol
    lo, hi = np.percentile(img, [1, 99])
    img = np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    scale = max(1, size // max(img.shape))
    img = np.kron(img, np.ones((scale, scale)))[::-1]  # origin at the bottom, as in the viewers
    return (img * 255).astype(np.uint8)


def pgmBytes(img):
    """A binary PGM (Tk reads it without extra libraries)."""
    h, w = img.shape
    return b'P5 %d %d 255\n' % (w, h) + img.tobytes()


class DiscaClusterPickerWizard(EmWizard):
    """List the clusters with size, mean posterior and average; copy the chosen numbers."""
    _targets = [(DiscaProtExport, ['classNumbers'])]

    def show(self, form, *params):
        classes = form.protocol.inputClasses.get()
        if classes is None or classes.getSize() == 0:
            dialog.showWarning('Clusters', 'Select classes (a finished clustering run) first.',
                               form.root)
            return None
        return ClusterPickerWindow(form, clusterRows(classes))


class ClusterPickerWindow:
    def __init__(self, form, rows):
        import tkinter as tk
        from tkinter import ttk
        from ..protocols.form_parsers import parseClassList
        self.form, self.rows = form, rows
        try:
            chosen = set(parseClassList(form.protocol.classNumbers.get()))
        except ValueError:
            chosen = set()
        # an empty field exports the clusters judged structures: show them ticked
        default = not (form.protocol.classNumbers.get() or '').strip()
        if default and hasVerdicts(rows):
            chosen = set(structureNumbers(rows))
        self.win = tk.Toplevel(form.root)
        self.win.title('DISCA - clusters to export')
        ttk.Label(self.win, text='Tick the clusters to export. Structures first, best '
                                 'resolution first; the structure-like ones are ticked by default '
                                 '(none ticked = that default).',
                  padding=5).pack(side=tk.TOP, anchor='w')
        body = ttk.Frame(self.win, padding=5)
        body.pack(side=tk.TOP, fill=tk.BOTH, expand=True)
        self.vars, self.images = {}, []
        perColumn = 6
        for i, (number, size, verdict, resolution, reason, post, path) in enumerate(rows):
            cell = ttk.Frame(body, padding=4, relief='groove')
            cell.grid(row=i % perColumn, column=i // perColumn, sticky='w', padx=3, pady=3)
            var = tk.BooleanVar(value=number in chosen)
            self.vars[number] = var
            if path:
                img = tk.PhotoImage(data=pgmBytes(thumbnail(path)))
                self.images.append(img)
                ttk.Label(cell, image=img).pack(side=tk.LEFT)
            text = 'Cluster %d\n%d subtomograms\nmean posterior %s' % (
                number, size, '%.2f' % post if post is not None else 'n/a')
            if verdict is not None:
                text = 'Cluster %d: %s\nresolution %s\n%d subtomograms\nmean posterior %s' % (
                    number, verdict, '%.0f Å' % resolution if resolution else 'none', size,
                    '%.2f' % post if post is not None else 'n/a')
            ttk.Checkbutton(cell, text=text, variable=var).pack(side=tk.LEFT, padx=5)
        buttons = ttk.Frame(self.win, padding=5)
        buttons.pack(side=tk.BOTTOM)
        for label, command in (('All', lambda: self.tickAll(True)),
                               ('None', lambda: self.tickAll(False)),
                               ('OK', self.apply), ('Cancel', self.win.destroy)):
            ttk.Button(buttons, text=label, command=command).pack(side=tk.LEFT, padx=3)

    def tickAll(self, value):
        for var in self.vars.values():
            var.set(value)

    def chosen(self):
        return [n for n, var in self.vars.items() if var.get()]

    def apply(self):
        self.form.setVar('classNumbers', numbersText(sorted(self.chosen())))
        self.win.destroy()
