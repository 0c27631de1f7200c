# -*- coding: utf-8 -*-
"""The DISCA GUI under a real X display (Xvfb when no display is set).

A demo-like chain is run once (synthetic tomogram -> DoG picking -> extraction -> DISCA
clustering, real engine, tiny: a few dozen 24^3 boxes, 2 iterations), then, as a user would:
every DISCA form is opened from a protocol of that chain, the wizards are run (DoG preview,
both box sizes, the cluster picker) and every viewer entry is opened. Each check asserts that
no exception escaped and that the expected widgets appeared; a screenshot of each window is
kept in the test output (folder printed at the end; DISCA_GUI_SHOTS=<dir> copies them there).

Skips, saying why, only when no X server can be had (no DISPLAY and no Xvfb; set-up installs
Xvfb as root). Run:  cd /tmp && python -m pytest --pyargs disca.tests.test_gui
                     python -m scipion tests disca.tests.test_gui
"""
import os
import select
import shutil
import subprocess
import tempfile
import time
import unittest

import pwem
from pyworkflow.tests import BaseTest, setupTestProject

from disca import Plugin
from disca.constants import PRESET_CHOICES
from disca.protocols import (DiscaProtDogPicking, DiscaProtExtract, DiscaProtCluster,
                             DiscaProtClassify, DiscaProtExport)

pwem.Domain.getPlugins()


def _displayWorks(display):
    xdpyinfo = shutil.which('xdpyinfo')
    if not xdpyinfo:
        return True  # cannot check: trust DISPLAY
    env = dict(os.environ, DISPLAY=display)
    return subprocess.run([xdpyinfo], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=20).returncode == 0


def startDisplay():
    """(display, Xvfb process or None, reason when there is none)."""
    current = os.environ.get('DISPLAY')
    if current and _displayWorks(current):
        return current, None, None
    xvfb = shutil.which('Xvfb')
    if not xvfb:
        return None, None, ('no X server: DISPLAY is %s and Xvfb is not installed (as root, '
                            'scripts/setup_env.sh installs it: apt-get install xvfb)'
                            % ('unusable' if current else 'unset'))
    read, write = os.pipe()
    log = open(os.path.join(tempfile.gettempdir(), 'disca-test-xvfb.log'), 'w')
    # own session: signals meant for the test's process group do not reach it
    proc = subprocess.Popen([xvfb, '-displayfd', str(write), '-screen', '0', '1600x1100x24',
                             '-nolisten', 'tcp', '-noreset'], pass_fds=(write,),
                            stdout=log, stderr=log, start_new_session=True)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 30)
    number = os.read(read, 32).decode().strip() if ready else ''
    # the read end stays open while Xvfb runs: it writes there again when it (re)starts a
    # server generation and dies with "Cannot write display number" if nobody listens
    proc.displayPipe = read
    if not number:
        proc.kill()
        return None, None, 'Xvfb did not start within 30 s'
    return ':' + number, proc, None


DISPLAY, XVFB, NO_DISPLAY = None, None, None


def _hasXmipp():
    try:
        import xmipp3  # noqa: F401
        return True
    except ImportError:
        return False


def setUpModule():
    global DISPLAY, XVFB, NO_DISPLAY
    DISPLAY, XVFB, NO_DISPLAY = startDisplay()
    if DISPLAY:
        os.environ['DISPLAY'] = DISPLAY


def tearDownModule():
    if XVFB is not None:
        XVFB.terminate()
        XVFB.wait(10)
        os.close(XVFB.displayPipe)


def _point(param, prot, outputName):
    param.set(prot)
    param.setExtended(outputName)


def allWidgets(widget):
    out = [widget]
    for child in widget.winfo_children():
        out += allWidgets(child)
    return out


def widgetTexts(widget):
    """Every 'text' option and entry value under ``widget`` (what a user reads)."""
    texts = []
    for w in allWidgets(widget):
        for getter in (lambda: w.cget('text'), lambda: w.get(), lambda: w.get('1.0', 'end')):
            try:
                value = getter()
            except Exception:
                continue
            if isinstance(value, str) and value:
                texts.append(value)
    return texts


class TestDiscaGui(BaseTest):
    """Forms, wizards and viewers of the plugin, opened under a display."""

    @classmethod
    def setUpClass(cls):
        if NO_DISPLAY:
            raise unittest.SkipTest(NO_DISPLAY)
        setupTestProject(cls)
        errors = Plugin.validateEngine()
        if errors:  # fail loudly: Scipion's runner reports skips as passes
            raise RuntimeError('DISCA engine missing: ' + ' '.join(errors))
        cls.shots = os.path.abspath(cls.getOutputPath('screenshots'))
        os.makedirs(cls.shots, exist_ok=True)
        cls._runChain()
        from pyworkflow.gui import Window
        cls.base = Window('DISCA GUI tests')  # hidden master window of every form
        cls.root = cls.base.getRoot()

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, 'base', None) is not None:
            try:
                cls.root.destroy()
            except Exception:
                pass
        copyTo = os.environ.get('DISCA_GUI_SHOTS')
        if copyTo and getattr(cls, 'shots', None) and os.path.isdir(cls.shots):
            shutil.copytree(cls.shots, copyTo, dirs_exist_ok=True)
        if getattr(cls, 'shots', None):
            print('GUI screenshots: %s' % cls.shots)

    # ------------------------------------------------------------------ chain
    @classmethod
    def _runChain(cls):
        from disca.tests.synthetic import SyntheticTomograms
        cls.data = SyntheticTomograms.create(cls, n_tomograms=1)
        pick = cls.newProtocol(DiscaProtDogPicking, particleDiameter=cls.data.diameter_A)
        pick.inputTomograms.set(cls.data.tomograms)
        cls.pick = cls.launchProtocol(pick)
        extract = cls.newProtocol(DiscaProtExtract, boxSize='24')
        _point(extract.inputCoordinates, cls.pick, 'coordinates')
        cls.extract = cls.launchProtocol(extract)
        cluster = cls.newProtocol(DiscaProtCluster, preset=PRESET_CHOICES.index('fast'),
                                  kRange='2:4', maxIterations='2', epochsPerIteration='1',
                                  useGpu=False, numberOfThreads=2, decoder=False)
        _point(cluster.inputSubtomos, cls.extract, 'subtomograms')
        cls.cluster = cls.launchProtocol(cluster)

    # ------------------------------------------------------------------ helpers
    def settle(self, seconds=0.6):
        end = time.time() + seconds
        while time.time() < end:
            self.root.update()
            time.sleep(0.05)

    def screenshot(self, widget, name):
        """PNG of one window (ImageMagick's import); returns its path."""
        self.settle()
        path = os.path.join(self.shots, name + '.png')
        importer = shutil.which('import')
        self.assertIsNotNone(importer, 'ImageMagick import missing: set-up installs imagemagick')
        toplevel = widget.winfo_toplevel()
        proc = subprocess.run([importer, '-window', str(toplevel.winfo_id()), path],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(os.path.getsize(path) > 2000, path)
        return path

    def openForm(self, prot, name):
        from pyworkflow.gui.form import FormWindow
        form = FormWindow('Protocol: %s' % prot.getClassLabel(), prot, lambda *a: None,
                          self.base)
        form.root.deiconify()
        form.root.geometry('+0+0')
        self.settle()
        header = ('runName', 'runMode', 'hostName', 'queue', 'comment', 'useGpu', 'gpuList')  # header
        missing = [p for p, _ in prot.iterDefinitionAttributes()
                   if p not in form.widgetDict and not p.startswith(header)]
        return form, missing

    def closeDialogsLater(self, name, found, tries=40):
        """When a modal Scipion dialog opens (it waits for its own closing), screenshot it,
        keep its texts in ``found`` and close it."""
        from pyworkflow.gui.dialog import Dialog

        def check(n=tries):
            dialogs = [w for w in allWidgets(self.root)
                       if isinstance(w, Dialog) and w.winfo_ismapped()]
            if not dialogs:
                if n > 0:
                    self.root.after(250, lambda: check(n - 1))
                return
            for i, dlg in enumerate(dialogs):
                found.append((dlg.title(), widgetTexts(dlg), dlg))
                try:
                    self.screenshot(dlg, '%s_%d' % (name, i) if i else name)
                finally:
                    dlg.destroy()
        self.root.after(300, check)

    # ------------------------------------------------------------------ forms
    def test_forms(self):
        """Every DISCA form opens with its widgets; no placeholder numbers are shown."""
        export = self.newProtocol(DiscaProtExport)
        _point(export.inputClasses, self.cluster, 'classes')
        classify = self.newProtocol(DiscaProtClassify)
        _point(classify.inputSubtomos, self.extract, 'subtomograms')
        classify.clusterRun.set(self.cluster)
        protocols = {'pick': self.pick, 'extract': self.extract, 'cluster': self.cluster,
                     'classify': classify, 'export': export}
        for name, prot in protocols.items():
            form, missing = self.openForm(prot, 'form_' + name)
            try:
                self.assertEqual(missing, [], '%s form lacks widgets' % name)
                self.screenshot(form.root, 'form_%s' % name)
                values = {p: form.widgetDict[p].get() for p in form.widgetDict
                          if hasattr(form.widgetDict[p], 'get')}
                for key in ('minDistance', 'border', 'boxSize', 'maxPicks', 'kRange',
                            'batchSize', 'pcaComponents', 'maxIterations'):
                    if key in values and key != 'boxSize':
                        self.assertNotIn(str(values[key]).strip(), ('-1', '-1.0', '0', ''),
                                         '%s.%s shows a placeholder' % (name, key))
            finally:
                form.root.destroy()

    # ------------------------------------------------------------------ wizards
    def test_wizards(self):
        from disca.wizards import (DiscaBoxSizeWizard, DiscaClusterPickerWizard,
                                   DiscaDogPreviewWizard, DiscaExtractBoxWizard)
        pick = self.newProtocol(DiscaProtDogPicking, particleDiameter=self.data.diameter_A)
        pick.inputTomograms.set(self.data.tomograms)
        form, _ = self.openForm(pick, 'pick')
        try:
            preview = DiscaDogPreviewWizard().show(form)
            self.settle(1.0)
            texts = widgetTexts(preview.win)
            self.assertIn('Use these values', texts)
            self.assertTrue(preview.status.cget('text').startswith('threshold'),
                            preview.status.cget('text'))
            self.screenshot(preview.win, 'wizard_dog_preview')
            DiscaBoxSizeWizard().show(form)
            box200 = int(form.widgetDict['boxSize'].get())
            # "Use these values" with a larger diameter: the box follows
            preview.diameter.set('300')
            preview.update()
            preview.apply()
            self.settle()
            self.assertEqual(float(form.widgetDict['particleDiameter'].get()), 300.0)
            self.assertGreater(int(form.widgetDict['boxSize'].get()), box200)
        finally:
            form.root.destroy()

        extract = self.newProtocol(DiscaProtExtract)
        _point(extract.inputCoordinates, self.pick, 'coordinates')
        form, _ = self.openForm(extract, 'extract')
        try:
            window = DiscaExtractBoxWizard().show(form)
            self.settle()
            self.screenshot(window.win, 'wizard_extract_box')
            self.assertIn("The coordinates' box", ' '.join(widgetTexts(window.win)))
            window.choice.set('diameter')
            window.diameter.set('280')
            window.apply()
            self.assertEqual(int(form.widgetDict['boxSize'].get()), extract.boxFromDiameter(280))
        finally:
            form.root.destroy()

        export = self.newProtocol(DiscaProtExport)
        _point(export.inputClasses, self.cluster, 'classes')
        form, _ = self.openForm(export, 'export')
        try:
            picker = DiscaClusterPickerWizard().show(form)
            self.settle()
            k = self.cluster.classes.getSize()
            self.assertEqual(len(picker.vars), k)
            self.assertEqual(len(picker.images), k, 'a thumbnail per cluster')
            texts = ' '.join(widgetTexts(picker.win))
            self.assertIn('mean posterior', texts)
            # every cluster shows its verdict, structures first; those are ticked by default
            from disca.protocols.cluster_verdicts import classRows, structureNumbers
            rows = classRows(self.cluster.classes)
            self.assertEqual(list(picker.vars), [r[0] for r in rows])
            import re
            self.assertEqual(len(re.findall(r'Cluster \d+: (?:structure|junk-like)', texts)), k)
            self.assertEqual(sorted(picker.chosen()), structureNumbers(rows))
            self.screenshot(picker.win, 'wizard_cluster_picker')
            picker.tickAll(False)
            picker.vars[1].set(True)
            picker.vars[k].set(True)
            picker.apply()
            self.assertEqual(form.widgetDict['classNumbers'].get(), '1, %d' % k if k > 2
                             else '1-2')
        finally:
            form.root.destroy()

    # ------------------------------------------------------------------ viewers
    def openViewer(self, viewerClass, prot, name):
        from pyworkflow.gui.form import FormWindow
        viewer = viewerClass(project=self.proj, protocol=prot)
        viewer.setProtocol(prot)
        window = FormWindow('Protocol Viewer: %s' % viewer.getClassName(), viewer,
                            viewer._viewAll, self.base, visualizeMode=True,
                            visualizeDict={k: viewer._visualizeParam
                                           for k in viewer._getVisualizeDict()})
        viewer.formWindow, viewer._tkRoot = window, window.root
        viewer.showInfo, viewer.showError = window.showInfo, window.showError
        window.root.deiconify()
        self.screenshot(window.root, name)
        return viewer, window

    def test_cluster_viewer(self):
        from disca.viewers import DiscaClusterViewer
        from disca.viewers.window import _WINDOWS
        viewer, window = self.openViewer(DiscaClusterViewer, self.cluster, 'viewer_cluster_form')
        key = 'disca-%s' % self.cluster.getObjId()
        try:
            for entry, tab in (('showIterations', 'Iterations'), ('showEmbedding', 'Embedding'),
                               ('showAverages', 'Averages'), ('showTomograms', 'Re-embedding'),
                               ('showSlices', 'Average slices')):
                viewer._visualizeParam(entry)
                self.settle()
                results = _WINDOWS[key]
                self.assertTrue(results.alive(), entry)
                self.assertEqual(results.notebook.tab(results.notebook.select(), 'text'), tab)
            self.assertEqual(sum(1 for w in _WINDOWS.values() if w.alive()), 1,
                             'one results window per run')
            results.select('Average slices')
            browser = results.browsers[0]
            browser.scale.set(3)
            self.settle()
            self.assertIn('voxels', browser.caption.cget('text'))
            self.assertIn('Å', browser.caption.cget('text'))
            self.screenshot(results.win, 'viewer_cluster_slices')
            results.select('Embedding')
            self.screenshot(results.win, 'viewer_cluster_embedding')
            viewer.clusterNumber.set(1)
            viewer._visualizeParam('showMontage')
            self.settle()
            self.assertIn('Cluster 1', results.frames)
            # the verdict table, one line per cluster, structures first
            found = []
            self.closeDialogsLater('viewer_verdicts', found)
            viewer._visualizeParam('showVerdicts')
            self.settle()
            self.assertTrue(found, 'no message window for the verdicts')
            texts = ' '.join(found[0][1])
            self.assertIn('clusters look like structures', texts)
            self.assertEqual(texts.count('cluster '), self.cluster.classes.getSize())
            # modal messages: report path (with copy), a cluster that does not exist
            found = []
            self.closeDialogsLater('viewer_report_path', found)
            viewer._visualizeParam('showReport')
            self.settle()
            self.assertTrue(found, 'no message window for the report')
            texts = ' '.join(found[0][1])
            self.assertIn('index.html', texts)
            self.assertIn('Copy path', texts)
            found = []
            viewer.clusterNumber.set(99)
            self.closeDialogsLater('viewer_montage_missing', found)
            viewer._visualizeParam('showMontage')
            self.settle()
            self.assertTrue(found)
            self.assertIn('does not exist', ' '.join(found[0][1]))
            # tomo's viewer needs xmipp's showj (absent here): DISCA's slices instead, said so
            found = []
            self.closeDialogsLater('viewer_tomo_classes', found)
            viewer._visualizeParam('showClasses')
            self.settle()
            fallbackNote = ' '.join(' '.join(f[1]) for f in found)
            if not _hasXmipp():  # as on many tomography installs: the note and the slices
                self.assertIn('browsable slices', fallbackNote)
                self.assertEqual(results.notebook.tab(results.notebook.select(), 'text'),
                                 'Average slices')
        finally:
            for w in list(_WINDOWS.values()):
                if w.alive():
                    w.win.destroy()
            window.root.destroy()

    def test_picking_viewer(self):
        from disca.viewers import DiscaPickingViewer
        from disca.viewers.window import _WINDOWS
        viewer, window = self.openViewer(DiscaPickingViewer, self.pick, 'viewer_picking_form')
        key = 'disca-pick-%s' % self.pick.getObjId()
        try:
            for entry in ('showHistogram', 'showPicks', 'showSlices'):
                viewer._visualizeParam(entry)
                self.settle()
            results = _WINDOWS[key]
            self.assertEqual(len(results.frames), 3)
            self.screenshot(results.win, 'viewer_picking_slices')
            results.select('Scores')
            self.screenshot(results.win, 'viewer_picking_scores')
        finally:
            if key in _WINDOWS and _WINDOWS[key].alive():
                _WINDOWS[key].win.destroy()
            window.root.destroy()
