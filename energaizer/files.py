"""Reading a user's input file as text, with one-line errors that name the flag or field.

Every reader of a user file (model file, profile, catalog, pools, trace, workload CSV) goes through
:func:`read_text` or :func:`open_text`, so that a missing, unreadable, binary, non-UTF-8 or absurdly
large file is an :class:`~energaizer.errors.InvalidInputError`, never a traceback.
"""

from __future__ import annotations

import os
import stat
from functools import cache
from pathlib import Path
from typing import IO, Any

from energaizer.errors import InvalidInputError

# A spec, catalog, profile or pools file is a few kB; a workload CSV or job trace a few hundred MB at most.
MAX_TEXT_BYTES = 64 * 1024 * 1024
MAX_TABLE_BYTES = 2 * 1024 * 1024 * 1024


def _checked_size(path: str | os.PathLike[str], field: str, max_bytes: int) -> int:
    """The size of a readable regular file (or a pipe/device: -1); errors for anything else."""
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except FileNotFoundError:
        raise InvalidInputError(field, f"file not found: {name}") from None
    except PermissionError:
        raise InvalidInputError(field, f"{name}: permission denied") from None
    except OSError as exc:
        raise InvalidInputError(field, f"cannot read {name}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InvalidInputError(field, f"{name} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        return -1  # /dev/stdin, a named pipe: read as a stream
    if st.st_size > max_bytes:
        raise InvalidInputError(
            field, f"{name} is {st.st_size / 2**20:,.0f} MiB; at most {max_bytes / 2**20:,.0f} MiB is read"
        )
    return st.st_size


GZIP_MAGIC = b"\x1f\x8b"


def _binary(head: bytes, name: str, field: str) -> InvalidInputError | None:
    """The error for a file that starts like a binary one (``head``: its first bytes), else None."""
    if head.startswith(GZIP_MAGIC):
        return InvalidInputError(field, f"{name} is gzip-compressed; decompress it first (gunzip -k {name})")
    if b"\x00" in head:
        return InvalidInputError(field, f"{name} is a binary file, not UTF-8 text")
    return None


def decode_text(data: bytes, name: str, field: str) -> str:
    """UTF-8 text of ``data`` (a leading BOM dropped); binary or other encodings are input errors."""
    error = _binary(data[:65536], name, field)
    if error is not None:
        raise error
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InvalidInputError(
            field, f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})"
        ) from None


def read_text(path: str | os.PathLike[str], field: str, *, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The whole file as text; ``field`` names the flag or setting in every error."""
    name = os.fspath(path)
    _checked_size(name, field, max_bytes)
    try:
        with open(name, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise InvalidInputError(field, f"cannot read {name}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise InvalidInputError(field, f"{name} is larger than {max_bytes / 2**20:,.0f} MiB")
    return decode_text(data, name, field)


def open_text(path: str | os.PathLike[str], field: str, *, max_bytes: int = MAX_TABLE_BYTES) -> IO[str]:
    """A UTF-8 text handle for streaming a table (``newline=""`` as :mod:`csv` wants).

    A decoding error surfaces while reading; callers turn ``UnicodeDecodeError`` into an input error
    with :func:`not_utf8`.
    """
    name = os.fspath(path)
    if _checked_size(name, field, max_bytes) >= 0:  # a regular file: look at its start (a pipe is read once)
        try:
            with open(name, "rb") as probe:
                head = probe.read(4096)
        except OSError as exc:
            raise InvalidInputError(field, f"cannot read {name}: {exc.strerror or exc}") from None
        error = _binary(head, name, field)
        if error is not None:
            raise error
    try:
        return open(name, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInputError(field, f"cannot read {name}: {exc.strerror or exc}") from None


def not_utf8(name: str | Path, field: str) -> InvalidInputError:
    return InvalidInputError(field, f"{name} is not UTF-8 text")


MAX_LINE_CHARS = 1024 * 1024


def table_header(header: list[str], name: str | Path, known: frozenset[str]) -> list[str]:
    """A CSV header as the readers use it: each name without the spaces around it (``model, gpu,
    requests`` names ``requests``, which was an unknown column carried through while the rows took the
    default); a ``known`` column in other letter case (``Requests``) is an input error naming it, where it
    was carried through silently too; a column named twice is one (:func:`check_unique_columns`)."""
    names = [column.strip() for column in header]
    for column in names:
        if column not in known and column.lower() in known:
            raise InvalidInputError(
                column, f"{name} line 1: column names are lowercase: write {column.lower()!r}"
            )
    check_unique_columns(names, name)
    return names


def check_unique_columns(header: list[str], name: str | Path) -> None:
    """A table header that names a column twice is an input error naming that column: which of its two
    cells a row means is anyone's guess (a reader keyed by column name would keep one and drop the other
    silently). Empty names (the trailing commas some spreadsheets write) are not columns."""
    first: dict[str, int] = {}
    for i, column in enumerate(header, start=1):
        if not column:
            continue
        if column in first:
            raise InvalidInputError(
                column, f"{name} line 1: the header names this column twice (columns {first[column]} and {i})"
            )
        first[column] = i


def bounded_lines(handle: IO[str], name: str | Path, field: str, max_chars: int = MAX_LINE_CHARS):  # type: ignore[no-untyped-def]
    """The lines of a text table, each at most ``max_chars`` long: a stream without newlines (``/dev/zero``,
    a binary blob) is an input error instead of a read that fills the memory."""
    readline = handle.readline
    while True:
        line = readline(max_chars)
        if not line:
            return
        if len(line) >= max_chars and not line.endswith(("\n", "\r")):
            raise InvalidInputError(
                field, f"{name}: a line longer than {max_chars:,} characters (not a CSV table?)"
            )
        yield line


# --- mappings that name a key twice ------------------------------------------------------------------------
# YAML and JSON parsers keep the last value of a key named twice in one mapping and drop the first silently
# (``layers: 32`` ... ``layers: 4`` is a 4-layer model): the readers of user files refuse it instead.


def unique_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """``object_pairs_hook`` for :func:`json.loads`: a dict, or a ``ValueError`` for a key named twice."""
    out: dict[Any, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


@cache
def _unique_key_loader() -> type:
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser where PyYAML was built with it

    class UniqueKeyLoader(base):  # type: ignore[valid-type,misc]
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                # a merge key (<<: *base) brings keys that the mapping's own may override, as YAML says
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` of ``text``, with a key named twice in one mapping a ``yaml.YAMLError``."""
    import yaml

    return yaml.load(text, Loader=_unique_key_loader())  # a SafeLoader subclass: safe
