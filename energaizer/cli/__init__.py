"""The ``energaizer`` command line: thin shells over the Python API."""
