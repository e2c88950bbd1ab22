"""Every suite: ``tests/`` is on ``sys.path`` (pytest puts a conftest's directory there), so the
suites share :mod:`example_support`."""
