"""``python -m energaizer_operator [NAMESPACE ...]``: run the operator, as ``energaizer operator [--namespace
NAMESPACE ...]`` does: without arguments, the namespaces of ``ENERGAIZER_NAMESPACES`` (none: cluster-wide)."""

from __future__ import annotations

import sys

from energaizer.errors import InvalidInputError
from energaizer_operator.main import run

if __name__ == "__main__":
    try:
        run(sys.argv[1:] or None)
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
