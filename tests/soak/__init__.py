"""Soak mode of the reliability suite (run by hand, never collected by pytest):
``python -m tests.soak --minutes 3``. See ``runner.py``."""
