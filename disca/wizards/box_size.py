# -*- coding: utf-8 -*-
"""Box size wizards: picking (from the particle diameter) and extraction (from the
coordinates' own box or from a particle diameter)."""
from pwem.wizards import EmWizard
from pyworkflow.gui import dialog

from ..protocols import DiscaProtDogPicking, DiscaProtExtract
from ..protocols.picking_utils import suggestedBoxSize


def boxSizeFor(protocol):
    """Suggested box (voxels) for the protocol's particle diameter and input tomograms;
    raises ValueError with a message for the user when it cannot be computed."""
    tomos = protocol.inputTomograms.get()
    if tomos is None:
        raise ValueError('Select the input tomograms first.')
    sr = tomos.getSamplingRate()
    diameter = protocol.particleDiameter.get()
    if not sr or not diameter:
        raise ValueError('The tomograms need a sampling rate and the particle diameter a value.')
    return suggestedBoxSize(diameter, sr)


class DiscaBoxSizeWizard(EmWizard):
    """Sets the box to 1.5 x the particle diameter (even, at least 24 voxels)."""
    _targets = [(DiscaProtDogPicking, ['boxSize'])]

    def show(self, form, *params):
        try:
            form.setVar('boxSize', boxSizeFor(form.protocol))
        except ValueError as exc:
            dialog.showWarning('Box size', str(exc), form.root)


def extractionChoices(protocol):
    """(coordinates' box in output voxels, diameter in Å or None, its source) for the
    extraction wizard; ValueError when the input is missing."""
    if protocol.inputCoordinates.get() is None:
        raise ValueError('Select the input coordinates first.')
    if not protocol._outputSamplingRate():
        raise ValueError('The tomograms need a sampling rate.')
    particle = protocol.particleDiameter()
    return (protocol.boxFromCoordinates(), particle[0] if particle else None,
            particle[1] if particle else '')


class DiscaExtractBoxWizard(EmWizard):
    """Box from the coordinates' own box size, or from a particle diameter."""
    _targets = [(DiscaProtExtract, ['boxSize'])]

    def show(self, form, *params):
        try:
            choices = extractionChoices(form.protocol)
        except ValueError as exc:
            dialog.showWarning('Box size', str(exc), form.root)
            return
        return ExtractBoxWindow(form, *choices)


class ExtractBoxWindow:
    """Two choices with their box sizes shown; OK copies the chosen one to the form."""

    def __init__(self, form, coordBox, diameterA, source):
        import tkinter as tk
        from tkinter import ttk
        self.form, self.prot = form, form.protocol
        self.win = tk.Toplevel(form.root)
        self.win.title('DISCA - extraction box size')
        self.choice = tk.StringVar(value='coords')
        self.diameter = tk.StringVar(value='%g' % diameterA if diameterA else '')
        frame = ttk.Frame(self.win, padding=10)
        frame.pack(fill=tk.BOTH, expand=True)
        ttk.Radiobutton(frame, variable=self.choice, value='coords',
                        text="The coordinates' box: %d voxels" % coordBox
                        ).grid(row=0, column=0, columnspan=3, sticky='w')
        ttk.Radiobutton(frame, variable=self.choice, value='diameter',
                        text='1.5 x particle diameter (Å):').grid(row=1, column=0, sticky='w')
        entry = ttk.Entry(frame, textvariable=self.diameter, width=8)
        entry.grid(row=1, column=1, sticky='w')
        self.result = ttk.Label(frame, text='')
        self.result.grid(row=1, column=2, sticky='w', padx=5)
        if source:
            ttk.Label(frame, text='(diameter from %s)' % source, foreground='gray40'
                      ).grid(row=2, column=0, columnspan=3, sticky='w')
        self.coordBox = coordBox
        self.diameter.trace_add('write', lambda *a: self.refresh())
        buttons = ttk.Frame(frame)
        buttons.grid(row=3, column=0, columnspan=3, pady=(10, 0))
        ttk.Button(buttons, text='OK', command=self.apply).pack(side=tk.LEFT, padx=5)
        ttk.Button(buttons, text='Cancel', command=self.win.destroy).pack(side=tk.LEFT)
        self.refresh()

    def chosenBox(self):
        if self.choice.get() == 'coords':
            return self.coordBox
        return self.prot.boxFromDiameter(float(self.diameter.get()))

    def refresh(self):
        try:
            self.result.config(text='= %d voxels' % self.prot.boxFromDiameter(
                float(self.diameter.get())))
        except (ValueError, TypeError):
            self.result.config(text='(give a diameter)')

    def apply(self):
        try:
            box = self.chosenBox()
        except (ValueError, TypeError):
            self.result.config(text='(give a diameter)')
            return
        self.form.setVar('boxSize', str(box))
        self.win.destroy()
