"""Shim for tools that still call ``setup.py`` (Scipion's plugin manager, old pip).

Everything (name, version, dependencies, entry points, package data) lives in
pyproject.toml; setuptools reads it from there. Do not add metadata here.
"""
from setuptools import setup

setup()
