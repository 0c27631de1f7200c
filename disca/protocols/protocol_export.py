# -*- coding: utf-8 -*-
"""Export chosen clusters as subtomogram and coordinate subsets (+ STAR files) for RELION."""
import os
from enum import Enum

from pyworkflow import BETA
import pyworkflow.protocol.params as params
from pwem.protocols import EMProtocol
from tomo.objects import SetOfCoordinates3D, SetOfSubTomograms
from tomo.protocols import ProtTomoBase

from disca_engine.io import relion

from disca_engine.contract import CLASS, COORDS, POSTERIOR

from .cluster_verdicts import classRows, hasVerdicts, rowText, structureNumbers
from .conversion import ParticleTableBuilder
from .engine_base import POSTERIOR_ATTR
from .form_parsers import parseClassList
from .picking_utils import setName
from .selection_file import classesOfItems, selectedItemIds

MODES = ['one subset per cluster', 'all chosen clusters merged']
MODE_PER_CLASS, MODE_MERGED = 0, 1
ALL = 'all'   # the chosen-clusters text that exports every cluster


class DiscaExportOutputs(Enum):
    subtomograms = SetOfSubTomograms
    coordinates = SetOfCoordinates3D


def outputNames(classNumber=None):
    """(subtomograms name, coordinates name) of one cluster, or of the merged export."""
    if classNumber is None:
        return DiscaExportOutputs.subtomograms.name, DiscaExportOutputs.coordinates.name
    return ('%s_class%03d' % (DiscaExportOutputs.subtomograms.name, classNumber),
            '%s_class%03d' % (DiscaExportOutputs.coordinates.name, classNumber))


class DiscaProtExport(EMProtocol, ProtTomoBase):
    """Turn the clusters you keep into particle subsets for averaging and refinement.

    For each chosen cluster (or for all of them merged) it writes:
    - a SetOfSubTomograms (same voxel size, box, acquisition and coordinates as the input):
      input for RELION's "Average subtomo" and any subtomogram averaging protocol;
    - a SetOfCoordinates3D linked to the original tomograms (voxel size and box size set):
      input for re-extraction, e.g. RELION 5 "Extract subtomos" after matching to tilt series;
    - STAR files in extra/ that RELION reads: subtomogram particles with an optics block
      and zero angles (relion_reconstruct --3d_rot, RELION 3.1/4 subtomogram averaging),
      and the picks in Å from the tomogram centre for RELION 5 (coordinates_*_relion5.star).
    Works with any SetOfClassesSubTomograms; needs no TensorFlow.
    """
    _label = 'export clusters'
    _devStatus = BETA
    _possibleOutputs = DiscaExportOutputs

    def _defineParams(self, form):
        form.addSection(label='Input')
        form.addParam('inputClasses', params.PointerParam, pointerClass='SetOfClassesSubTomograms',
                      important=True, label='Classes',
                      help='Usually the output of "DISCA clustering" or "classify with a trained '
                           'model"; any set of subtomogram classes works.')
        form.addParam('classNumbers', params.StringParam, default='',
                      label='Clusters to export',
                      help='Class numbers, e.g. "1,3-5", or "all". Empty: the clusters the '
                           'clustering judged structures (half-set FSC and null ratio, see '
                           'its report); every cluster when the input classes carry no '
                           'verdict (e.g. classes from another program). The wizard lists '
                           'each cluster with its verdict, resolution, size and average, '
                           'structures first, to tick the ones you want.')
        form.addParam('selectionFile', params.PathParam, default='',
                      label='Selection file (optional)',
                      help='disca-selection.tsv saved from the clustering report\'s interactive '
                           'embedding (lasso or box, "Download selection"): export exactly '
                           'those subtomograms instead of whole clusters; the clusters field '
                           'is then ignored. The output is still split by cluster (or merged) '
                           'as chosen below.')
        form.addParam('mode', params.EnumParam, choices=MODES, default=MODE_PER_CLASS,
                      display=params.EnumParam.DISPLAY_HLIST, label='Output',
                      help='One subset per cluster (outputs subtomograms_class003, '
                           'coordinates_class003, ...) or one merged subset (outputs '
                           'subtomograms and coordinates).')

    @classmethod
    def validateInstallation(cls):
        return []  # pure Scipion bookkeeping: the TensorFlow environment is not needed

    def _insertAllSteps(self):
        self._insertFunctionStep(self.createOutputStep)

    # -------------------------- STEPS functions -----------------------------
    def createOutputStep(self):
        classes = self.inputClasses.get()
        chosen, why = self.chosenWhy()
        self.info('Exporting clusters %s (%s)' % (', '.join(map(str, chosen)), why))
        for line in self.verdictLines(chosen):
            self.info('  ' + line)
        groups = [[n] for n in chosen] if self.mode.get() == MODE_PER_CLASS else [chosen]
        for group in groups:
            number = group[0] if self.mode.get() == MODE_PER_CLASS else None
            self._exportGroup(classes, group, number)

    def _exportGroup(self, classes, classNumbers, number):
        subName, coordName = outputNames(number)
        suffix = '_class%03d' % number if number is not None else ''
        inputSubtomos = classes.getImages()
        inputCoords = inputSubtomos.getCoordinates3D() if inputSubtomos.hasCoordinates3D() else None

        subtomos = self._createSetOfSubTomograms(suffix)
        subtomos.copyInfo(inputSubtomos)  # sampling rate, acquisition, coordinates pointer
        coords = None
        if inputCoords is not None:
            coords = self._createSetOfCoordinates3D(inputCoords.getPrecedents(), suffix)
            coords.setSamplingRate(inputCoords.getSamplingRate())
            coords.setBoxSize(self._coordinateBoxSize(inputSubtomos, inputCoords))

        builder = ParticleTableBuilder()
        selected = self.getSelectedIds()
        for classNumber in classNumbers:
            for subtomo in classes[classNumber].iterSubtomos():
                if selected is not None and subtomo.getObjId() not in selected:
                    continue
                posterior = getattr(subtomo, POSTERIOR_ATTR, None)
                builder.add(subtomo, **{CLASS: classNumber,
                                        POSTERIOR: posterior.get() if posterior else 1.0})
                if coords is not None and subtomo.hasCoordinate3D():
                    coord = subtomo.getCoordinate3D().clone()
                    coord.setObjId(None)
                    coords.append(coord)
                newSubtomo = subtomo.clone()
                newSubtomo.setClassId(classNumber)
                if not newSubtomo.hasTransform():
                    # Boxes centred on their picks: identity alignment. RELION's writers
                    # read a transform from every subtomogram and fail without one.
                    newSubtomo.setTransform(None)
                subtomos.append(newSubtomo)

        table = builder.table()
        self._writeRelionStars(table, inputSubtomos, inputCoords, subName, coordName, classNumbers)
        outputs = {subName: subtomos}
        if coords is not None:
            outputs[coordName] = coords
        self._defineOutputs(**outputs)
        for obj in outputs.values():
            self._defineSourceRelation(self.inputClasses, obj)
        self.info('Exported clusters %s: %d subtomograms -> %s'
                  % (classNumbers, subtomos.getSize(), ', '.join(outputs)))

    def _writeRelionStars(self, table, subtomos, coords, subName, coordName, classNumbers):
        """extra/<subName>.star: RELION 3.1/4 subtomogram particles (optics block, zero angles),
        read by relion_reconstruct --3d_rot and RELION's subtomogram averaging; and, when the
        subtomograms have coordinates, extra/<coordName>_relion5.star: the picks in Å from
        the tomogram centre for RELION 5's tilt-series pipeline."""
        comment = ('DISCA clusters %s exported by scipion-em-disca'
                   % ','.join(map(str, classNumbers)))
        single, copied = relion.split_volume_stacks(
            table, self._getExtraPath('relion_volumes'), voxel_size=subtomos.getSamplingRate())
        if copied:
            self.info('%d subtomograms from volume stacks written as single volumes for RELION '
                      '(extra/relion_volumes)' % copied)
        optics, particles = relion.subtomogram_tables(
            single, subtomos.getSamplingRate(), (subtomos.getDim() or (0,))[0],
            microscope=self._microscope(subtomos))
        relion.write_blocks(self._getExtraPath('%s.star' % subName), [optics, particles],
                            comment=comment + ' (RELION 3.1/4 subtomograms)', version=30001)
        if coords is None or COORDS[0] not in table:
            return
        shapes = {}
        for tomo in coords.getPrecedents().iterItems():
            x, y, z = tomo.getDim()
            shapes[tomo.getTsId()] = (z, y, x)
        relion5 = relion.relion5_coordinate_table(table, shapes, coords.getSamplingRate())
        relion.write_blocks(self._getExtraPath('%s_relion5.star' % coordName), [relion5],
                            comment=comment + ' (RELION 5 picks: A from the tomogram centre)',
                            version=50001)

    @staticmethod
    def _microscope(subtomos):
        """Voltage, Cs and amplitude contrast from the acquisition, where it has them."""
        acq = subtomos.getAcquisition()
        values = {'voltage': acq.getVoltage(), 'cs': acq.getSphericalAberration(),
                  'amplitude_contrast': acq.getAmplitudeContrast()} if acq else {}
        if not (values.get('voltage') or 0) > 0:  # unset acquisitions store 0 or None
            values.pop('voltage', None)
        return {k: v for k, v in values.items() if v is not None}

    @staticmethod
    def _coordinateBoxSize(subtomos, coords):
        """Box in the coordinates' voxels (the subtomograms may be binned relative to them)."""
        if coords.getBoxSize():
            return coords.getBoxSize()
        dim = (subtomos.getDim() or (0,))[0]
        ratio = subtomos.getSamplingRate() / (coords.getSamplingRate() or subtomos.getSamplingRate())
        return int(round(dim * ratio))

    # -------------------------- UTILS functions -----------------------------
    def getClassSizes(self):
        classes = self.inputClasses.get()
        return {cls.getObjId(): cls.getSize() for cls in classes.iterItems()} if classes else {}

    def getChosenClasses(self):
        """Chosen class numbers, in increasing order (``chosenWhy``)."""
        return self.chosenWhy()[0]

    def getSelectedIds(self):
        """Object ids of the selection file, or None without one (ValueError: a bad file)."""
        path = (self.selectionFile.get() or '').strip()
        if not path:
            return None
        key = (path, os.path.getmtime(path) if os.path.isfile(path) else None)
        if getattr(self, '_selectionCache', (None,))[0] != key:  # read again once edited
            self._selectionCache = (key, selectedItemIds(path))
        return self._selectionCache[1]

    def chosenWhy(self):
        """(class numbers, why): those holding the selection file's subtomograms; else the
        typed ones; 'all': every class; empty: those judged structures, or every class when
        the input carries no verdicts."""
        selected = self.getSelectedIds()
        if selected is not None:
            counts, _ = classesOfItems(self.inputClasses.get(), selected)
            return sorted(counts), 'the %d subtomograms of selection file %s' % (
                len(selected), os.path.basename(self.selectionFile.get().strip()))
        text = (self.classNumbers.get() or '').strip()
        available = sorted(self.getClassSizes())
        if text.lower() == ALL:
            return available, 'all clusters, as asked'
        chosen = parseClassList(text)
        if chosen:
            return sorted(chosen), 'typed in the form'
        classes = self.inputClasses.get()
        rows = classRows(classes) if classes is not None else []
        if not hasVerdicts(rows):
            return available, 'all clusters: the input classes carry no verdict'
        return structureNumbers(rows), 'judged structures by the clustering (default)'

    def verdictLines(self, numbers):
        """One line per chosen class with its verdict and reason, in table order."""
        classes = self.inputClasses.get()
        if classes is None:
            return []
        return [rowText(r) for r in classRows(classes) if r[0] in numbers and r[2] is not None]

    # -------------------------- INFO functions ------------------------------
    def _validate(self):
        classes = self.inputClasses.get()
        if classes is None:
            return ['Select the classes to export.']
        sizes = self.getClassSizes()
        if not sizes:
            return ['The input has no classes.']
        try:
            selected = self.getSelectedIds()
        except ValueError as exc:
            return ['Selection file: %s.' % exc]
        if selected is not None:
            _, missing = classesOfItems(classes, selected)
            if missing:
                return ['Selection file: %d of its %d subtomograms are not in the input classes '
                        '(e.g. item %d): it was made on another run; select in the report of '
                        'the clustering these classes come from.'
                        % (len(missing), len(selected), min(missing))]
        try:
            chosen, why = self.chosenWhy()
        except ValueError as exc:
            return ['Clusters to export: %s.' % exc]
        unknown = [n for n in chosen if n not in sizes]
        if unknown:
            return ['Class number(s) %s do not exist; the input has classes %s.'
                    % (', '.join(map(str, unknown)), ', '.join(map(str, sorted(sizes))))]
        if not chosen:
            return ['No cluster was judged a structure (see the clustering\'s report): type '
                    'the clusters to export, or "all".']
        if sum(sizes[n] for n in chosen) == 0:
            return ['The chosen clusters (%s) have no subtomograms: choose others.'
                    % ', '.join(map(str, chosen))]
        empty = [n for n in chosen if sizes[n] == 0]
        if empty and self.mode.get() == MODE_PER_CLASS:
            return ['Cluster(s) %s are empty: leave them out or merge.' % ', '.join(map(str, empty))]
        return []

    def _summary(self):
        # the output sets are listed by Scipion beside this summary: not repeated here
        if self.inputClasses.get() is None:
            return []
        try:
            chosen, why = self.chosenWhy()
        except ValueError as exc:
            return ['Clusters to export: %s.' % exc]
        done = any(True for _ in self.iterOutputAttributes())
        lines = ['Chosen clusters: %s (%s)%s' % (', '.join(map(str, chosen)) or 'none', why,
                                                 '' if done else '; not run yet')]
        lines += self.verdictLines(chosen)
        if done:
            lines.append('STAR files for RELION/other tools: %s' % self._getExtraPath())
        return lines

    def _methods(self):
        if not any(True for _ in self.iterOutputAttributes()):
            return []
        chosen, why = self.chosenWhy()
        return ['Clusters %s of %s (%s) were exported as subtomogram and coordinate subsets.'
                % (', '.join(map(str, chosen)), setName(self.inputClasses), why)]
