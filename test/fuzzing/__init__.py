"""Fuzzing support shared by the hypothesis and atheris fuzz tests.

- `oracles`: what counts as an accepted refusal and what as a finding,
  for each input the server takes from outsiders (pure, no NICOS import)
- `queuehandler`: the daemon's ``ss_*`` command handlers driven in-process
  through the real application over an in-memory queue (imports NICOS,
  starts no daemon)
- `atheris_targets`: coverage-guided targets; run
  ``.venv/bin/python test/fuzzing/atheris_targets.py TARGET [libFuzzer args]``

The directory is on ``sys.path`` in tests because test/conftest.py is
(pytest's rootdir-relative "prepend" import mode); as a package it is
imported as ``fuzzing``.
"""
