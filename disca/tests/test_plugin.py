# -*- coding: utf-8 -*-
"""The Plugin class: engine location, environment isolation, validation, install command."""
import os
import stat
import tempfile
import unittest

from disca import Plugin
from disca.constants import DISCA_ENGINE, DISCA_ENV_HOME, ENV_READY_MARKER
from disca.protocols import DiscaProtDogPicking, DiscaProtExtract


class TestDiscaPlugin(unittest.TestCase):

    def setUp(self):
        self._saved = {k: Plugin._vars.get(k) for k in (DISCA_ENGINE, DISCA_ENV_HOME)}

    def tearDown(self):
        Plugin._vars.update(self._saved)

    def test_environ_isolated(self):
        os.environ['PYTHONPATH'] = '/somewhere/scipion'
        try:
            env = Plugin.getEnviron()
        finally:
            del os.environ['PYTHONPATH']
        self.assertNotIn('PYTHONPATH', env)
        self.assertNotIn('VIRTUAL_ENV', env)
        self.assertEqual(env['PATH'].split(os.pathsep)[0],
                         os.path.dirname(Plugin.getEngineProgram()))
        self.assertEqual(env['TF_CPP_MIN_LOG_LEVEL'], '2')

    def test_custom_engine_and_validation(self):
        with tempfile.TemporaryDirectory() as tmp:
            fake = os.path.join(tmp, 'disca-engine')
            Plugin._vars[DISCA_ENGINE] = fake
            errors = Plugin.validateEngine()
            self.assertEqual(len(errors), 1)
            self.assertIn(fake, errors[0])
            with open(fake, 'w') as fh:
                fh.write('#!/bin/sh\n')
            os.chmod(fake, os.stat(fake).st_mode | stat.S_IXUSR)
            self.assertEqual(Plugin.getEngineProgram(), fake)
            self.assertTrue(Plugin.isEngineInstalled())
            self.assertEqual(Plugin.validateEngine(), [])
            self.assertEqual(Plugin.validateInstallation(), [])

    def test_missing_bundled_env_gives_install_hint(self):
        Plugin._vars[DISCA_ENGINE] = ''
        Plugin._vars[DISCA_ENV_HOME] = '/nonexistent/disca-env'
        self.assertFalse(Plugin.isEngineInstalled())
        errors = Plugin.validateInstallation()
        self.assertTrue(errors and 'installb disca' in errors[0])
        # Picking and extraction need no engine env.
        self.assertEqual(DiscaProtDogPicking.validateInstallation(), [])
        self.assertEqual(DiscaProtExtract.validateInstallation(), [])

    def test_installed_requirements(self):
        with tempfile.TemporaryDirectory() as tmp:
            Plugin._vars[DISCA_ENV_HOME] = tmp
            self.assertIsNone(Plugin.installedRequirements())
            with open(os.path.join(tmp, ENV_READY_MARKER), 'w') as fh:
                fh.write('\n'.join(Plugin._engineRequirements(False)) + '\n')
            self.assertEqual(Plugin.installedRequirements(), Plugin._engineRequirements(False))

    def test_install_command(self):
        cpu = Plugin._installCommand(useCuda=False)
        cuda = Plugin._installCommand(useCuda=True)
        self.assertIn("'tensorflow-cpu", cpu)
        self.assertNotIn('and-cuda', cpu)
        self.assertIn("'tensorflow[and-cuda]", cuda)
        self.assertNotIn('tensorflow-cpu', cuda)
        for cmd in (cpu, cuda):
            self.assertIn('python3 -m venv', cmd)
            self.assertNotIn('\n', cmd)          # one && chain: a failed step stops it
            self.assertTrue(cmd.endswith('> %s' % ENV_READY_MARKER))
            self.assertIn('disca-engine --version', cmd)
        # Source checkout: editable engine; wheel install: package copied + launcher.
        self.assertIn('pip install --no-deps -e', Plugin._engineInstallSteps(fromSource=True)[0])
        wheel = ' && '.join(Plugin._engineInstallSteps(fromSource=False))
        self.assertIn('cp -r', wheel)
        self.assertIn('-m disca_engine', wheel)
        self.assertIn('chmod +x bin/disca-engine', wheel)


class TestDiscaProtocolsConf(unittest.TestCase):

    def test_all_protocols_in_tree(self):
        """protocols.conf parses and every DISCA protocol in it is a registered class."""
        import configparser
        import json
        import pwem
        conf = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'protocols.conf')
        cp = configparser.ConfigParser()
        cp.optionxform = str
        cp.read(conf)
        tree = json.loads(cp.get('PROTOCOLS', 'Tomography'))
        disca = next(s for s in tree if s['text'] == 'DISCA')
        names = [p['value'] for p in disca['children']]
        self.assertEqual(names, ['DiscaProtDogPicking', 'DiscaProtExtract', 'DiscaProtCluster',
                                 'DiscaProtClassify', 'DiscaProtExport'])
        protocols = pwem.Domain.getProtocols()
        for name in names:
            self.assertIn(name, protocols)
