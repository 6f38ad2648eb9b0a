"""Node pools: the GPU inventory a plan runs on (YAML file, ``--add-pool`` flags, power-limit sweeps)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from energaizer.errors import InvalidInputError, pydantic_message

MAX_NODES = 100_000
MAX_GPUS_PER_NODE = 64


class NodePool(BaseModel):
    """``nodes`` nodes with ``gpus_per_node`` GPUs of catalog type ``gpu`` each, optionally at a
    locked SM clock or a power limit (per GPU)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", description="unique pool name; default: the GPU id (+ the knobs)")
    gpu: str = Field(description="catalog GPU id or alias")
    nodes: int = Field(ge=1, le=MAX_NODES)
    gpus_per_node: int = Field(ge=1, le=MAX_GPUS_PER_NODE)
    frequency_mhz: float | None = Field(default=None, gt=0, le=5000)
    power_limit_w: float | None = Field(default=None, gt=0, le=5000)

    @field_validator("gpu")
    @classmethod
    def _known_gpu(cls, value: str) -> str:
        from energaizer.catalog import get_gpu

        return get_gpu(value).id  # raises UnknownNameError listing the catalog ids

    @model_validator(mode="after")
    def _knobs_in_range(self) -> NodePool:
        """A locked clock or power limit the GPU cannot take is refused here, naming the pool, not
        later by the estimator without it."""
        from energaizer.catalog import get_gpu

        spec = get_gpu(self.gpu)
        if self.frequency_mhz is not None:
            lo, hi = spec.clock_range_mhz
            if not lo - 0.5 <= self.frequency_mhz <= hi + 0.5:
                raise ValueError(
                    f"frequency_mhz {self.frequency_mhz:g} MHz is outside {spec.id}'s clock range {lo:g}-{hi:g} MHz"
                )
        if self.power_limit_w is not None:
            check_power_limit(spec.id, self.power_limit_w, "power_limit_w ")
        return self

    @model_validator(mode="after")
    def _default_name(self) -> NodePool:
        if not self.name:
            name = self.gpu
            if self.power_limit_w is not None:
                name += f"@{self.power_limit_w:g}W"
            if self.frequency_mhz is not None:
                name += f"@{self.frequency_mhz:g}MHz"
            self.name = name
        return self

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node


def check_power_limit(gpu: str, watts: float, label: str) -> None:
    """``watts`` within the power limits GPU ``gpu`` can be set to (as the estimator checks them)."""
    from energaizer.catalog import get_gpu

    spec = get_gpu(gpu)
    lo, hi = spec.power_limit_range_w
    if not lo - 0.5 <= watts <= hi + 0.5:
        raise ValueError(f"{label}{watts:g} W is outside {spec.id}'s power-limit range {lo:g}-{hi:g} W")


class PoolsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pools: list[NodePool] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> PoolsFile:
        seen: set[str] = set()
        for p in self.pools:
            if p.name in seen:
                raise ValueError(f"duplicate pool name {p.name!r} (give each pool a distinct name)")
            seen.add(p.name)
        return self


def _validated(data: Any, source: str) -> list[NodePool]:
    if isinstance(data, list):
        data = {"pools": data}
    if not isinstance(data, dict):
        raise InvalidInputError("pools", f"{source}: expected a list of pools or a mapping with 'pools'")
    try:
        return PoolsFile.model_validate(data).pools
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "pools"
        raise InvalidInputError(loc, f"{source}: {pydantic_message(err)}") from None


def read_pools(path: str | Path) -> list[NodePool]:
    """Read a YAML (or JSON) list of pools, or ``{pools: [...]}``."""
    import yaml

    from energaizer.files import load_yaml, read_text

    text = read_text(path, "pools", max_bytes=16 * 1024 * 1024)
    try:
        data = load_yaml(text)
    except (yaml.YAMLError, RecursionError) as exc:
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidInputError("pools", f"{path}: malformed YAML ({problem}{where})") from None
    return _validated(data, str(path))


def pools_from_dicts(items: Sequence[dict[str, Any]], source: str = "pools") -> list[NodePool]:
    return _validated(list(items), source)


_ADD_POOL = re.compile(r"^\s*([A-Za-z0-9._-]+)\s*:\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_add_pool(text: str) -> NodePool:
    """``h100-sxm:8x8`` -> 8 nodes of 8 GPUs of type h100-sxm."""
    m = _ADD_POOL.match(text)
    if not m:
        raise InvalidInputError("--add-pool", f"{text!r} is not GPU:NODESxGPUS_PER_NODE (e.g. h100-sxm:8x8)")
    gpu, nodes, per_node = m.group(1), int(m.group(2)), int(m.group(3))
    try:
        return NodePool(gpu=gpu, nodes=nodes, gpus_per_node=per_node)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InvalidInputError("--add-pool", f"{text!r}: {pydantic_message(err)}") from None


def merge_added(pools: list[NodePool], added: Sequence[NodePool]) -> list[NodePool]:
    """Append ``--add-pool`` pools; one whose name is taken gets a numeric suffix."""
    out = list(pools)
    names = {p.name for p in out}
    for p in added:
        name, k = p.name, 2
        while name in names:
            name = f"{p.name}-{k}"
            k += 1
        names.add(name)
        out.append(p.model_copy(update={"name": name}))
    return out


def parse_power_limits(values: Sequence[str], pools: Sequence[NodePool]) -> dict[str, list[float]]:
    """``POOL=W`` items (repeatable; ``W`` may be a comma list; POOL is a pool name or GPU id,
    matching every pool of that GPU) -> pool name -> watts to sweep."""
    out: dict[str, list[float]] = {}
    names = [p.name for p in pools]
    for item in values:
        for part in _split_items(item):
            if "=" not in part:
                raise InvalidInputError("--power-limit-w", f"{part!r} is not POOL=WATTS", names)
            key, _, watts_text = part.partition("=")
            key = key.strip()
            targets = [p.name for p in pools if p.name == key] or [p.name for p in pools if p.gpu == key]
            if not targets:
                try:
                    from energaizer.catalog import get_gpu

                    gid = get_gpu(key).id
                    targets = [p.name for p in pools if p.gpu == gid]
                except InvalidInputError:
                    targets = []
            if not targets:
                raise InvalidInputError("--power-limit-w", f"no pool named {key!r}", names)
            for w in watts_text.split(","):
                try:
                    watts = float(w)
                except ValueError:
                    raise InvalidInputError("--power-limit-w", f"{w!r} is not a number of watts") from None
                if not 0 < watts <= 5000:
                    raise InvalidInputError("--power-limit-w", f"{watts:g} W is outside (0, 5000]")
                for t in targets:
                    try:  # before the plan runs, not when its sweep reaches the value
                        check_power_limit(next(p.gpu for p in pools if p.name == t), watts, f"pool {t}: ")
                    except ValueError as exc:
                        raise InvalidInputError("--power-limit-w", str(exc)) from None
                    out.setdefault(t, []).append(watts)
    return out


def _split_items(item: str) -> list[str]:
    """``a=300,400,b=200`` -> ``["a=300,400", "b=200"]`` (a comma list of watts stays with its pool)."""
    parts: list[str] = []
    for chunk in item.split(","):
        chunk = chunk.strip()
        if not chunk:
            continue
        if "=" in chunk or not parts:
            parts.append(chunk)
        else:
            parts[-1] += "," + chunk
    return parts


def default_demo_pools() -> list[NodePool]:
    """The demo inventory: a small heterogeneous cluster (64 GPUs)."""
    return [
        NodePool(gpu="h100-sxm", nodes=2, gpus_per_node=8),
        NodePool(gpu="a100-sxm4-80gb", nodes=2, gpus_per_node=8),
        NodePool(gpu="l40s", nodes=2, gpus_per_node=4),
        NodePool(gpu="l4", nodes=2, gpus_per_node=4),
    ]
