# Kept only so that older pip versions can do editable installs; metadata lives in setup.cfg.
from setuptools import setup

setup()
