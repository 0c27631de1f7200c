# -*- coding: utf-8 -*-
"""Scipion tests of the DISCA plugin.

Registering the plugins here lets plain ``python -m pytest --pyargs disca.tests`` see the
plugin variables (Scipion's own test runner does it by itself).
"""
import pwem

pwem.Domain.getPlugins()
