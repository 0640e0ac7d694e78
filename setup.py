"""Shim for Beam's ``--setup_file=./setup.py`` (remote workers install the package from it).
All metadata lives in pyproject.toml."""
from setuptools import setup

setup()
