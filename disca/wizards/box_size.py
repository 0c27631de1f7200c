# -*- coding: utf-8 -*-
"""Box size from the particle diameter and the tomograms' sampling rate."""
from pwem.wizards import EmWizard
from pyworkflow.gui import dialog

from ..protocols import DiscaProtDogPicking
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
