"""``python -m energaizer_operator [NAMESPACE ...]``: run the operator (cluster-wide without arguments)."""

from __future__ import annotations

import sys

from energaizer.errors import InvalidInputError
from energaizer_operator.main import run

if __name__ == "__main__":
    try:
        run(sys.argv[1:] or None, all_namespaces=not sys.argv[1:])
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
