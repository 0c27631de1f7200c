# -*- coding: utf-8 -*-
# **************************************************************************
# * scipion-em-disca: template-free DoG picking, subtomogram extraction and
# * DISCA deep iterative subtomogram clustering for Scipion.
# *
# * This program is free software; you can redistribute it and/or modify
# * it under the terms of the GNU General Public License as published by
# * the Free Software Foundation; either version 3 of the License, or
# * (at your option) any later version.
# *
# * This program is distributed in the hope that it will be useful,
# * but WITHOUT ANY WARRANTY; without even the implied warranty of
# * MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
# * GNU General Public License for more details.
# **************************************************************************
"""Scipion plugin for DISCA.

The numerical work is done by the engine (package ``disca_engine``). Its numpy-only
parts (picking, extraction) run inside Scipion's process; the TensorFlow parts run as
the ``disca-engine`` program of a separate virtual environment (the "bundled env",
installed with ``scipion3 installb disca``) so TensorFlow never enters Scipion's env.
"""
import os
import shlex
import sys

import pwem
import pyworkflow.utils as pwutils

from .constants import (DISCA_VERSION, DISCA_ENV_HOME, DISCA_CUDA, DISCA_ENGINE,
                        DISCA_ENV_NAME, DISCA_PACKAGE, ENGINE_PROGRAM, ENV_READY_MARKER,
                        TF_PACKAGE_CPU, TF_PACKAGE_CUDA, INSTALL_HINT)

__version__ = DISCA_VERSION
_logo = None  # no logo shipped yet
_references = ['Zeng2023', 'Xu2017']

_PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))


class Plugin(pwem.Plugin):
    _homeVar = DISCA_ENV_HOME
    _pathVars = [DISCA_ENV_HOME]
    _url = 'https://github.com/scipion-em/scipion-em-disca'
    _supportedVersions = [DISCA_VERSION]
    _processingField = ['TOMO']

    @classmethod
    def _defineVariables(cls):
        cls._defineEmVar(DISCA_ENV_HOME, DISCA_ENV_NAME,
                         description='Folder of the bundled DISCA engine environment '
                                     '(a Python venv with TensorFlow and disca-engine).')
        cls._defineVar(DISCA_CUDA, '0',
                       description="'1' installs the CUDA build of TensorFlow "
                                   "(tensorflow[and-cuda]) instead of tensorflow-cpu.")
        cls._defineVar(DISCA_ENGINE, '',
                       description='Optional path of an existing disca-engine executable '
                                   'to use instead of the bundled environment.')

    # ---------------------------------------------------------------- engine ---
    @classmethod
    def getEngineProgram(cls):
        """Path of the disca-engine executable (DISCA_ENGINE if set, else the bundled env's)."""
        custom = cls.getVar(DISCA_ENGINE)
        if custom:
            return os.path.abspath(os.path.expanduser(custom))
        return cls.getHome('bin', ENGINE_PROGRAM)

    @classmethod
    def getEnviron(cls):
        """Environment for running the engine: its bin folder first on PATH and none of
        Scipion's Python packages visible (PYTHONPATH/VIRTUAL_ENV removed)."""
        environ = pwutils.Environ(os.environ)
        for var in ('PYTHONPATH', 'VIRTUAL_ENV', 'PYTHONHOME'):
            environ.pop(var, None)
        binDir = os.path.dirname(cls.getEngineProgram())
        environ.update({'PATH': binDir}, position=pwutils.Environ.BEGIN)
        environ['TF_CPP_MIN_LOG_LEVEL'] = '2'
        return environ

    @classmethod
    def isEngineInstalled(cls):
        program = cls.getEngineProgram()
        return os.path.isfile(program) and os.access(program, os.X_OK)

    @classmethod
    def getInstallCommandHint(cls):
        return INSTALL_HINT

    @classmethod
    def validateEngine(cls):
        """Errors (for a protocol's _validate) when the engine program is missing."""
        if cls.isEngineInstalled():
            return []
        program = cls.getEngineProgram()
        if cls.getVar(DISCA_ENGINE):
            return ['The disca-engine program given by %s was not found or is not '
                    'executable: %s. Fix the path in the Scipion config or unset %s.'
                    % (DISCA_ENGINE, program, DISCA_ENGINE)]
        return ['The DISCA engine environment is not installed (missing %s). Install it '
                'with: %s' % (program, cls.getInstallCommandHint())]

    @classmethod
    def validateInstallation(cls):
        # Checks the program itself (bundled env or DISCA_ENGINE), with the install hint.
        return cls.validateEngine()

    # ----------------------------------------------------------- installation ---
    @classmethod
    def useCuda(cls):
        return str(cls.getVar(DISCA_CUDA, '0')).strip().lower() in ('1', 'true', 'yes')

    @classmethod
    def defineBinaries(cls, env):
        env.addPackage(DISCA_PACKAGE, version=__version__, tar='void.tgz',
                       commands=[(cls._installCommand(cls.useCuda()), ENV_READY_MARKER)],
                       neededProgs=['python3'], default=True)

    @classmethod
    def _engineRequirements(cls, useCuda):
        """Requirements of the engine env (disca_engine/requirements.txt), with the CUDA
        build of TensorFlow when asked."""
        import disca_engine
        reqFile = os.path.join(os.path.dirname(disca_engine.__file__), 'requirements.txt')
        reqs = []
        with open(reqFile) as f:
            for line in f:
                line = line.split('#', 1)[0].strip()
                if not line:
                    continue
                if useCuda and line.startswith(TF_PACKAGE_CPU):
                    line = TF_PACKAGE_CUDA + line[len(TF_PACKAGE_CPU):]
                reqs.append(line)
        return reqs

    @classmethod
    def installedRequirements(cls):
        """Requirements the bundled env was built with (None if it is not complete), to
        tell when it must be rebuilt after disca_engine/requirements.txt changed."""
        marker = cls.getHome(ENV_READY_MARKER)
        if not os.path.isfile(marker):
            return None
        with open(marker) as f:
            return [line.strip() for line in f if line.strip()]

    @classmethod
    def _engineInstallSteps(cls, fromSource=None):
        """Shell steps (run in the env folder) installing the engine package itself.

        fromSource: True when the plugin is a source checkout (a pyproject.toml beside the
        package); None detects it."""
        import disca_engine
        engineDir = os.path.dirname(os.path.abspath(disca_engine.__file__))
        srcRoot = os.path.dirname(engineDir)
        if fromSource is None:
            fromSource = os.path.isfile(os.path.join(srcRoot, 'pyproject.toml'))
        q = shlex.quote
        if fromSource:
            # Source checkout (plugin installed editable): install the engine from it in
            # editable mode too, so the env always runs the same engine code as the plugin.
            return ['./bin/python -m pip install --no-deps -e %s' % q(srcRoot)]
        # Installed from a wheel: no project file; copy the package and add a launcher.
        launcher = ('#!/bin/sh\\n'
                    'exec "$(dirname "$0")/python" -m disca_engine "$@"\\n')
        return [
            'SITE=$(./bin/python -c "import sysconfig; print(sysconfig.get_paths()[\'purelib\'])")',
            'rm -rf "$SITE/disca_engine"',
            'cp -r %s "$SITE/disca_engine"' % q(engineDir),
            "printf '%s' > bin/%s" % (launcher, ENGINE_PROGRAM),
            'chmod +x bin/%s' % ENGINE_PROGRAM,
        ]

    @classmethod
    def _installCommand(cls, useCuda=False):
        """One shell line (run in the env folder) that builds the engine venv there.

        It is a single '&&' chain: installb runs each line of a command separately and
        ignores exit codes, so the marker file is only created when every step worked."""
        reqs = ' '.join(shlex.quote(r) for r in cls._engineRequirements(useCuda))
        steps = [
            'unset PYTHONPATH PYTHONHOME VIRTUAL_ENV',
            'python3 -m venv --clear .',
            './bin/python -m pip install --upgrade pip',
            './bin/python -m pip install %s' % reqs,
        ]
        steps += cls._engineInstallSteps()
        steps += [
            # Check that what the clustering needs imports, then mark the env complete.
            './bin/python -c "import tensorflow, keras, sklearn, mrcfile, disca_engine"',
            './bin/%s --version' % ENGINE_PROGRAM,
            # The marker records what was installed (see installedRequirements).
            'printf "%%s\\n" %s > %s' % (reqs, ENV_READY_MARKER),
        ]
        return ' && '.join(steps)
