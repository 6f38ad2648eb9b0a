"""Operator settings: one pydantic object read from ``ENERGAIZER_*`` environment variables.

The variable names are fixed (the Helm chart sets them); see docs/operator.md for the table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from energaizer.errors import InvalidInputError
from energaizer.files import load_yaml, unique_keys

ENV_PREFIX = "ENERGAIZER_"
# field name -> environment variable
ENV_VARS: dict[str, str] = {
    "namespaces": "ENERGAIZER_NAMESPACES",
    "batch_window_seconds": "ENERGAIZER_BATCH_WINDOW_SECONDS",
    "max_batch_delay_seconds": "ENERGAIZER_MAX_BATCH_DELAY_SECONDS",
    "estimate_window_seconds": "ENERGAIZER_ESTIMATE_WINDOW_SECONDS",
    "gpu_product_label": "ENERGAIZER_GPU_PRODUCT_LABEL",
    "gpu_resource": "ENERGAIZER_GPU_RESOURCE",
    "product_map": "ENERGAIZER_PRODUCT_MAP",
    "default_mode": "ENERGAIZER_DEFAULT_MODE",
    "default_objective": "ENERGAIZER_DEFAULT_OBJECTIVE",
    "metrics_port": "ENERGAIZER_METRICS_PORT",
    "health_port": "ENERGAIZER_HEALTH_PORT",
    "profile": "ENERGAIZER_PROFILE",
    "log_level": "ENERGAIZER_LOG_LEVEL",
    "leader_election": "ENERGAIZER_LEADER_ELECTION",
    "lease_duration_seconds": "ENERGAIZER_LEASE_DURATION_SECONDS",
    "profile_reload_seconds": "ENERGAIZER_PROFILE_RELOAD_SECONDS",
    "prometheus_url": "ENERGAIZER_PROMETHEUS_URL",
    "measure_interval_seconds": "ENERGAIZER_MEASURE_INTERVAL_SECONDS",
    "measure_margin_seconds": "ENERGAIZER_MEASURE_MARGIN_SECONDS",
    "measure_give_up_seconds": "ENERGAIZER_MEASURE_GIVE_UP_SECONDS",
    "max_wait_seconds": "ENERGAIZER_MAX_WAIT_SECONDS",
    "fleet_mode": "ENERGAIZER_FLEET_MODE",
    "fleet_idle_timeout_seconds": "ENERGAIZER_FLEET_IDLE_TIMEOUT_SECONDS",
    "relist_interval_seconds": "ENERGAIZER_RELIST_INTERVAL_SECONDS",
    "other_pods_interval_seconds": "ENERGAIZER_OTHER_PODS_INTERVAL_SECONDS",
    "api_timeout_seconds": "ENERGAIZER_API_TIMEOUT_SECONDS",
}


class OperatorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    namespaces: list[str] = Field(default_factory=list, description="namespaces to watch; empty = all")
    batch_window_seconds: float = Field(
        default=2.0, gt=0, le=3600, description="placement batching window: no new AIJob for this long"
    )
    max_batch_delay_seconds: float = Field(
        default=30.0, gt=0, le=86400, description="an estimated AIJob waits at most this long for its batch"
    )
    estimate_window_seconds: float = Field(
        default=0.2, gt=0, le=60, description="AIJobs arriving within this window are estimated in one call"
    )
    gpu_product_label: str = Field(default="nvidia.com/gpu.product", min_length=1)
    gpu_resource: str = Field(default="nvidia.com/gpu", min_length=1)
    product_map: dict[str, str] = Field(
        default_factory=dict, description="GPU product label value -> catalog id (overrides the catalog)"
    )
    default_mode: Literal["steer", "annotate"] = "steer"
    default_objective: Literal["energy", "time", "energy-delay"] = "energy"
    metrics_port: int = Field(default=8080, ge=0, le=65535)
    health_port: int = Field(default=8081, ge=0, le=65535)
    profile: str | None = Field(default=None, description="calibration profile path")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    leader_election: bool = Field(default=True, description="only the holder of a Lease writes (HA)")
    lease_duration_seconds: float = Field(
        default=15.0,
        ge=3,
        le=600,
        description="a standby takes over this long after the leader's last renewal",
    )
    profile_reload_seconds: float = Field(
        default=30.0,
        ge=0,
        le=86400,
        description="check the profile file this often (0 = read it at each estimate)",
    )
    # Measured energy (contract section 5): dcgm-exporter's counter read through this Prometheus.
    prometheus_url: str | None = Field(
        default=None, pattern=r"^https?://\S+$", description="Prometheus base URL; unset = no measurement"
    )
    measure_interval_seconds: float = Field(
        default=15.0, gt=0, le=3600, description="how often finished AIJobs are (re)tried; first retry delay"
    )
    measure_margin_seconds: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="samples looked for this long before a pod's start and after its end (>= one "
        "dcgm-exporter collection + one scrape interval)",
    )
    measure_give_up_seconds: float = Field(
        default=3600.0, gt=0, description="a job whose GPUs have no energy series this long after it ended"
    )

    # Fleet energy (issue 17): bounded waiting and what idle GPUs cost.
    max_wait_seconds: float = Field(
        default=900.0,
        ge=0,
        le=7 * 86400,
        description="default spec.placement.maxWaitSeconds: how long a job waits for its best GPU type",
    )
    fleet_mode: Literal["static", "elastic"] = Field(
        default="static", description="static: GPUs stay powered; elastic: node pools scale down when idle"
    )
    fleet_idle_timeout_seconds: float = Field(
        default=600.0, ge=0, le=86400, description="elastic: how long an idle node stays up before scale-down"
    )

    relist_interval_seconds: float = Field(
        default=300.0,
        ge=0,
        le=86400,
        description="list the indexed kinds this often to drop what was deleted while a watch was down"
        " (0 = never)",
    )
    other_pods_interval_seconds: float = Field(
        default=30.0,
        ge=0,
        le=86400,
        description="with namespaces set: list the GPU pods of the other namespaces this often, whose GPUs"
        " are not free (0 = never: they count as free)",
    )
    api_timeout_seconds: float = Field(
        default=30.0,
        ge=1,
        le=600,
        description="the longest one of the operator's own API calls may take (an unanswered one holds a"
        " worker thread or a write slot until then)",
    )

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [n.strip() for n in value.split(",") if n.strip()]
        return value

    @field_validator("product_map", mode="before")
    @classmethod
    def _load_map(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_product_map(value)
        return value

    @field_validator("fleet_mode", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("profile", "prometheus_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """Read the settings; a bad value raises ``InvalidInputError`` naming the variable."""
        env = os.environ if environ is None else environ
        raw = {field: env[var] for field, var in ENV_VARS.items() if env.get(var, "").strip() != ""}
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = str(err["loc"][0]) if err.get("loc") else "settings"
            raise InvalidInputError(ENV_VARS.get(field, field), err["msg"]) from None


def parse_product_map(text: str) -> dict[str, str]:
    """``{"LABEL": "catalog-id"}`` as JSON, or ``@/path/file.yaml`` (a YAML/JSON mapping)."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("@"):
        # an unreadable or malformed file is a ValueError, which from_env reports naming the variable
        # (an OSError would escape the settings check; the extender then blamed its --port for it)
        path = text[1:]
        try:
            data = load_yaml(Path(path).read_text(encoding="utf-8"))  # a label named twice: an error
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ValueError(f"{path} is not UTF-8 text") from None
        except yaml.YAMLError as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"{path} is not valid YAML/JSON ({first})") from None
    else:
        try:
            data = json.loads(text, object_pairs_hook=unique_keys)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON object: {exc.msg}") from None
        # unique_keys' ValueError ("key 'X' appears twice in one object") goes to from_env as it is
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError("must map GPU product label values (strings) to catalog ids (strings)")
    return dict(data)
