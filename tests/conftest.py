"""Every suite: ``tests/`` is on ``sys.path`` (pytest puts a conftest's directory there), so the
suites share :mod:`example_support`.

The run's instance records (``unik run``, ``ps``, ``stop``) go to a state directory of
the test session's own, never into the user's ``~/.local/state/unik``: a test that kills
a run, or leaves a detached one, must not leave names behind in the user's ``unik ps``.
"""

import atexit
import os
import shutil
import tempfile

if "UNIK_TESTS_STATE" not in os.environ:
    _state = tempfile.mkdtemp(prefix="unik-tests-state-")
    atexit.register(shutil.rmtree, _state, True)
    os.environ["UNIK_TESTS_STATE"] = os.environ["XDG_STATE_HOME"] = _state
