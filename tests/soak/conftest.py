"""The soak runner is run by hand (``python -m tests.soak``); pytest never collects it."""

collect_ignore = ["__init__.py", "__main__.py", "runner.py", "sm_runner.py"]
