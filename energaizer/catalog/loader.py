"""Loading, validating and merging the GPU and model catalogs.

The built-in catalog is ``gpus.yaml`` and ``models.yaml`` beside this module. User catalogs are
YAML or JSON files with optional top-level ``gpus:`` and ``models:`` lists (same fields as the
built-in entries); they come from the ``ENERGAIZER_CATALOG`` environment variable (paths separated
by ``os.pathsep``) and from :func:`load_extra`, applied in that order. A user entry whose id exists
already replaces it. Files are read once and cached; the environment variable is re-read on every
lookup, so changing it takes effect without a restart.

Lookups are case-insensitive over ``id``, ``aliases``, ``name`` (GPUs) and ``hf_id`` (models).
Spaces and underscores in a name also match dashes (``NVIDIA H100 80GB HBM3`` finds the GPU whose
name or alias is ``nvidia-h100-80gb-hbm3``). An id always wins over another entry's alias.

The built-in YAML files take tens of milliseconds to parse, a large share of a CLI command's start;
their parsed content is kept as JSON in ``$XDG_CACHE_HOME/energaizer`` (default ``~/.cache``),
named after a hash of the YAML text, so an edited file is parsed again. The cached content is
validated like the YAML itself; a cache that cannot be read or written is passed over.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from energaizer.catalog.schema import GPUSpec, ModelArchitecture
from energaizer.errors import InvalidInputError, UnknownNameError, pydantic_message

ENV_VAR = "ENERGAIZER_CATALOG"
BUILTIN_DIR = Path(__file__).resolve().parent
BUILTIN_GPUS = BUILTIN_DIR / "gpus.yaml"
BUILTIN_MODELS = BUILTIN_DIR / "models.yaml"
_TOP_LEVEL_KEYS = frozenset({"gpus", "models", "references"})

Entry = TypeVar("Entry", GPUSpec, ModelArchitecture)


def _normalise(name: str) -> str:
    return name.strip().lower()


def _dashed(key: str) -> str:
    return re.sub(r"[\s_]+", "-", key)


# Trailing tags of a Hugging Face checkpoint name that leave its architecture as it is: tuning
# (instruct, chat, it, thinking, base, pt), packaging (hf), a release date (2507, 0528) and
# quantisation formats. A model name that matches no entry is looked up again without them
# (``Qwen/Qwen3-30B-A3B-Thinking-2507-FP8`` -> ``qwen/qwen3-30b-a3b``); the precision the run
# uses stays the workload's ``precision`` field.
_VARIANT_TAG = re.compile(
    r"-(?:instruct|chat|it|thinking|reasoning|base|pt|hf|\d{4}"
    r"|fp8(?:-dynamic|-block)?|fp4|nvfp4|mxfp4|w8a8|w8a16|w4a16|int4|int8|awq|gptq(?:-int[48])?"
    r"|bnb-4bit|[48]bit)$"
)


def _base_name(norm: str) -> str:
    """``norm`` (normalised, dashed) without its trailing checkpoint-variant tags."""
    while True:
        stripped = _VARIANT_TAG.sub("", norm)
        if stripped == norm or not stripped or stripped.endswith("/"):
            return norm
        norm = stripped


@dataclass(frozen=True)
class CatalogFile:
    """The validated content of one catalog file."""

    path: str
    gpus: tuple[GPUSpec, ...] = ()
    models: tuple[ModelArchitecture, ...] = ()


def _parse_text(text: str, path: str) -> Any:
    from energaizer.files import load_yaml, unique_keys

    if path.lower().endswith(".json"):
        try:
            return json.loads(text, object_pairs_hook=unique_keys)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(path, f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
        except RecursionError:
            raise InvalidInputError(path, "not valid JSON: nested too deeply to be a catalog") from None
        except ValueError as exc:  # an integer of more than 4300 digits
            raise InvalidInputError(path, f"not valid JSON: {str(exc).split(';')[0]}") from None
    import yaml  # here, not at the top: the built-in catalog usually comes from the JSON cache

    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInputError(path, f"not valid YAML: {problem}{where}") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise InvalidInputError(path, f"not valid YAML: {str(exc).split(';')[0]}") from None


def _error_location(err: dict[str, Any]) -> str:
    parts: list[str] = []
    for item in err.get("loc", ()):
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(f".{item}" if parts else str(item))
    return "".join(parts)


def _validate_entries(raw: Any, kind: str, schema: type[Entry], path: str) -> tuple[Entry, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidInputError(f"{path}: {kind}", f"must be a list of entries, got {type(raw).__name__}")
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        label = f"{path}: {kind}[{index}]"
        if not isinstance(item, dict):
            raise InvalidInputError(label, f"must be a mapping, got {type(item).__name__}")
        entry_id = item.get("id")
        if isinstance(entry_id, str):
            label = f"{path}: {kind}[{index}] ({entry_id})"
        try:
            entry = schema.model_validate(item)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = _error_location(first)
            field_name = f"{label}.{loc}" if loc else label
            extra = f" (and {exc.error_count() - 1} more errors)" if exc.error_count() > 1 else ""
            raise InvalidInputError(field_name, f"{pydantic_message(first)}{extra}") from None
        key = _normalise(entry.id)
        if key in seen:
            raise InvalidInputError(f"{label}.id", f"duplicate id {entry.id!r} (also {kind}[{seen[key]}])")
        seen[key] = index
        entries.append(entry)
    return tuple(entries)


def parse_catalog(data: Any, path: str) -> CatalogFile:
    """Validate the parsed content of a catalog file (a mapping with ``gpus``/``models`` lists)."""
    if data is None:
        return CatalogFile(path=path)
    if not isinstance(data, dict):
        raise InvalidInputError(path, "a catalog file must be a mapping with 'gpus' and/or 'models' lists")
    unknown = sorted(str(k) for k in data if k not in _TOP_LEVEL_KEYS)
    if unknown:
        raise InvalidInputError(
            f"{path}: {unknown[0]}", "unknown top-level key", allowed=sorted(_TOP_LEVEL_KEYS)
        )
    return CatalogFile(
        path=path,
        gpus=_validate_entries(data.get("gpus"), "gpus", GPUSpec, path),
        models=_validate_entries(data.get("models"), "models", ModelArchitecture, path),
    )


def read_catalog_file(path: str | os.PathLike[str]) -> CatalogFile:
    """Read and validate one YAML/JSON catalog file; raise InvalidInputError naming file and field."""
    from energaizer.files import read_text

    name = os.fspath(path)
    text = read_text(name, "catalog", max_bytes=64 * 1024 * 1024)
    return parse_catalog(_parse_text(text, name), name)


@cache
def _builtin() -> CatalogFile:
    gpus = _read_builtin_file(BUILTIN_GPUS)
    models = _read_builtin_file(BUILTIN_MODELS)
    return CatalogFile(path=str(BUILTIN_DIR), gpus=gpus.gpus, models=models.models)


_CACHE_FORMAT = 1


def _cache_dir() -> Path | None:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):  # no home directory to speak of: no cache
        return None
    return Path(base) / "energaizer"


def _read_builtin_file(path: Path) -> CatalogFile:
    """:func:`read_catalog_file` for a built-in file, through the JSON cache of its parsed content."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(name, f"cannot read catalog file: {exc.strerror or exc}") from None
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
    folder = _cache_dir()
    cached = folder / f"catalog-{path.stem}-{digest}.json" if folder is not None else None
    if cached is not None:
        try:
            box = json.loads(cached.read_bytes())
            if isinstance(box, dict) and box.get("format") == _CACHE_FORMAT and box.get("sha256") == digest:
                return parse_catalog(box["data"], name)
        except (OSError, ValueError, KeyError):  # InvalidInputError is a ValueError
            pass  # no cache yet, or a damaged one: parse the YAML
    data = _parse_text(text, name)
    result = parse_catalog(data, name)  # a file that does not validate is not cached
    if cached is not None:
        _write_cache(
            cached, f"catalog-{path.stem}-*.json", {"format": _CACHE_FORMAT, "sha256": digest, "data": data}
        )
    return result


def _write_cache(target: Path, siblings: str, box: dict[str, Any]) -> None:
    """Write ``box`` as JSON to ``target`` atomically and remove the ``siblings`` it supersedes."""
    try:
        text = json.dumps(box, ensure_ascii=False, allow_nan=False)
        if json.loads(text) != box:  # YAML values JSON cannot hold (dates, non-string keys)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    except (OSError, ValueError, TypeError):
        return  # a read-only home, or content JSON cannot hold: parse the YAML next time too
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)  # atomic: a concurrent reader sees the old file or the whole new one
    except OSError:
        tmp.unlink(missing_ok=True)
        return
    for old in target.parent.glob(siblings):  # caches of earlier versions of the file
        if old != target:
            with contextlib.suppress(OSError):
                old.unlink(missing_ok=True)


_file_cache: dict[tuple[str, int, int], CatalogFile] = {}


def _cached_file(path: str) -> CatalogFile:
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise InvalidInputError(
            path, f"cannot read catalog file: {exc.strerror or exc} (from {ENV_VAR} or --catalog)"
        ) from None
    key = (os.path.abspath(path), stat.st_mtime_ns, stat.st_size)
    found = _file_cache.get(key)
    if found is None:
        found = read_catalog_file(path)
        _file_cache[key] = found
    return found


@dataclass
class _Table(Generic[Entry]):
    kind: str
    entries: dict[str, Entry] = field(default_factory=dict)  # normalised id -> entry, insertion order
    index: dict[str, str] = field(default_factory=dict)  # any normalised name -> normalised id
    variants: bool = False  # also match names by their base without checkpoint-variant tags (models)
    base_index: dict[str, str | None] = field(default_factory=dict)  # base name -> id (None: ambiguous)

    def add(self, items: Iterable[Entry]) -> None:
        for item in items:
            self.entries[_normalise(item.id)] = item

    def build_index(self) -> None:
        index: dict[str, str] = {}
        for key, entry in self.entries.items():
            for name in _names(entry):
                norm = _normalise(name)
                index[norm] = key
                index.setdefault(_dashed(norm), key)
        for key in self.entries:  # ids win over aliases
            index[key] = key
        self.index = index
        base_index: dict[str, str | None] = {}
        if self.variants:
            for name, key in index.items():
                base = _base_name(_dashed(name))
                if base_index.setdefault(base, key) != key:
                    base_index[base] = None  # two entries share this base: only exact names select
        self.base_index = base_index

    def get(self, name: str) -> Entry:
        if not isinstance(name, str) or not name.strip():
            raise UnknownNameError(self.kind, str(name), self.ids())
        norm = _normalise(name)
        key = self.index.get(norm) or self.index.get(_dashed(norm))
        if key is None and self.variants:
            key = self.base_index.get(_base_name(_dashed(norm)))
        if key is None:
            raise UnknownNameError(self.kind, name, self.ids())
        return self.entries[key]

    def ids(self) -> list[str]:
        return [entry.id for entry in self.entries.values()]


def _names(entry: BaseModel) -> list[str]:
    names = [*getattr(entry, "aliases", [])]
    for attr in ("name", "hf_id"):
        value = getattr(entry, attr, None)
        if value:
            names.append(value)
    return names


@dataclass
class Catalog:
    """A merged, indexed catalog: built-in entries, then user files in order (later ids replace)."""

    gpus: _Table[GPUSpec] = field(default_factory=lambda: _Table("gpu"))
    models: _Table[ModelArchitecture] = field(default_factory=lambda: _Table("model", variants=True))
    files: tuple[str, ...] = ()

    @classmethod
    def from_files(cls, parts: Sequence[CatalogFile]) -> Catalog:
        catalog = cls(files=tuple(p.path for p in parts))
        for part in parts:
            catalog.gpus.add(part.gpus)
            catalog.models.add(part.models)
        catalog.gpus.build_index()
        catalog.models.build_index()
        return catalog

    def get_gpu(self, name: str) -> GPUSpec:
        return self.gpus.get(name)

    def get_model(self, name: str) -> ModelArchitecture:
        return self.models.get(name)

    def list_gpus(self) -> list[GPUSpec]:
        return list(self.gpus.entries.values())

    def list_models(self) -> list[ModelArchitecture]:
        return list(self.models.entries.values())

    @cached_property
    def gfd_index(self) -> dict[str, str]:
        """Lower-cased ``nvidia.com/gpu.product`` value -> GPU id (later entries win)."""
        return {_normalise(p): gpu.id for gpu in self.gpus.entries.values() for p in gpu.gfd_products}


_lock = threading.Lock()
_extra_paths: list[str] = []
_merged: dict[tuple[str, tuple[str, ...]], Catalog] = {}


def _env_paths(value: str) -> list[str]:
    return [p for p in (part.strip() for part in value.split(os.pathsep)) if p]


def current() -> Catalog:
    """The merged catalog for the current ``ENERGAIZER_CATALOG`` value and :func:`load_extra` calls."""
    env_value = os.environ.get(ENV_VAR, "")
    paths = (*_env_paths(env_value), *_extra_paths)
    stamp = tuple(_stamp(p) for p in paths)
    key = (env_value, stamp)
    found = _merged.get(key)
    if found is not None:
        return found
    with _lock:
        found = _merged.get(key)
        if found is None:
            found = Catalog.from_files([_builtin(), *(_cached_file(p) for p in paths)])
            _merged.clear()
            _merged[key] = found
    return found


def _stamp(path: str) -> str:
    try:
        stat = os.stat(path)
    except OSError:
        return f"{path}:missing"
    return f"{os.path.abspath(path)}:{stat.st_mtime_ns}:{stat.st_size}"


def load_extra(path: str | os.PathLike[str]) -> CatalogFile:
    """Add a user catalog file (YAML/JSON) on top of the built-in and ``ENERGAIZER_CATALOG`` ones.

    The file is validated at once (InvalidInputError names the file and field); its entries replace
    existing ones with the same id. Returns the parsed file.
    """
    name = os.fspath(path)
    parsed = _cached_file(name)
    with _lock:
        if name not in _extra_paths:
            _extra_paths.append(name)
        _merged.clear()
    return parsed


def reset_extra() -> None:
    """Forget every file added with :func:`load_extra` (the environment variable still applies)."""
    with _lock:
        _extra_paths.clear()
        _merged.clear()
