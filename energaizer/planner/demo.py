"""The built-in demo trace: the Alibaba 2023 GPU cluster's fitted arrival, GPU-count and duration
model (``data/demo/alibaba2023_fit.json``) plus Azure LLM inference requests
(``data/demo/azure_llm_inference_2023.csv.gz``) for the serving jobs, generated with a fixed seed.

Neither trace says what a job runs, so kinds and models are assigned with the seed (listed in
:attr:`Trace.assumptions`, and in ``plan --json`` under ``assumptions``):

* a job is a serving (inference) job with probability ``inference_share``, else training;
* a serving job of sampled duration D serves the requests of one Azure service (``code`` or
  ``conv``, in proportion to their requests) that arrive in a window of D seconds starting at a
  random offset of the one-hour trace (wrapping around), with the window's mean prompt and output
  lengths; the model is chosen by service and GPU count (:data:`SERVING_MODELS`), batch size 32;
* a training job runs D seconds on the reference GPU as a template training model (see
  :mod:`energaizer.planner.trace`);
* arrival times follow the fitted hour-of-day Poisson process, compressed in time so that the
  offered load (GPU-seconds at reference-GPU speed over the arrival span) is ``load`` times the
  pools' GPUs (the real cluster had 6,212 GPUs; the demo has a few dozen).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from energaizer.planner.costs import CostCache
from energaizer.planner.demo_defaults import DEMO_JOBS, DEMO_LOAD
from energaizer.planner.pools import NodePool
from energaizer.planner.trace import DEFAULT_REFERENCE_GPU, Trace, TraceBuilder
from energaizer.workload import Workload

SERVING_MODELS: dict[str, dict[int, str]] = {
    "code": {1: "codellama-7b", 2: "codellama-13b", 4: "codellama-34b", 8: "codellama-70b"},
    "conv": {1: "llama-3.1-8b", 2: "qwen3-14b", 4: "qwen3-32b", 8: "llama-3.1-70b"},
}
SERVING_BATCH = 32


@dataclass(frozen=True)
class DemoConfig:
    jobs: int = DEMO_JOBS
    load: float = DEMO_LOAD
    inference_share: float = 0.5
    seed: int = 0
    reference_gpu: str = DEFAULT_REFERENCE_GPU


def _data(name: str) -> bytes:
    return (resources.files("energaizer") / "data" / "demo" / name).read_bytes()


@lru_cache(maxsize=1)
def load_fit() -> dict[str, Any]:
    return json.loads(_data("alibaba2023_fit.json"))


@dataclass(frozen=True)
class AzureRequests:
    service: np.ndarray
    t: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    span_s: float


@lru_cache(maxsize=1)
def load_azure() -> AzureRequests:
    text = gzip.decompress(_data("azure_llm_inference_2023.csv.gz")).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    t = np.array([float(r["t_s"]) for r in rows])
    return AzureRequests(
        service=np.array([r["service"] for r in rows]),
        t=t,
        input_tokens=np.array([int(r["input_tokens"]) for r in rows]),
        output_tokens=np.array([int(r["output_tokens"]) for r in rows]),
        span_s=float(math.ceil(t.max())),
    )


def _serving_model(service: str, gpus: int) -> str:
    table = SERVING_MODELS[service]
    fitting = [g for g in table if g <= gpus]
    return table[max(fitting)] if fitting else table[min(table)]


@dataclass(frozen=True)
class _ServiceIndex:
    t: np.ndarray  # sorted request times
    cum_in: np.ndarray  # prefix sums of input tokens (length n + 1)
    cum_out: np.ndarray


@lru_cache(maxsize=4)
def _service_index(service: str) -> _ServiceIndex:
    az = load_azure()
    mask = az.service == service
    order = np.argsort(az.t[mask], kind="stable")
    return _ServiceIndex(
        t=az.t[mask][order],
        cum_in=np.concatenate([[0], np.cumsum(az.input_tokens[mask][order])]),
        cum_out=np.concatenate([[0], np.cumsum(az.output_tokens[mask][order])]),
    )


def _window(az: AzureRequests, service: str, start: float, length: float) -> tuple[int, int, int]:
    """Requests, mean input and output tokens of ``service`` in [start, start+length) (wrapping)."""
    idx = _service_index(service)
    n_all = idx.t.size
    span = az.span_s
    full = int(length // span)
    end = start + (length - full * span)
    segments = [(start, min(end, span))] + ([(0.0, end - span)] if end > span else [])
    count = 0
    tok_in = tok_out = 0.0
    for a, b in segments:
        i, k = np.searchsorted(idx.t, [a, b])
        count += int(k - i)
        tok_in += float(idx.cum_in[k] - idx.cum_in[i])
        tok_out += float(idx.cum_out[k] - idx.cum_out[i])
    if full:  # the window covers the whole hour at least once: whole-service means
        requests = full * n_all + count
        mean_in, mean_out = idx.cum_in[-1] / n_all, idx.cum_out[-1] / n_all
    elif count:
        requests, mean_in, mean_out = count, tok_in / count, tok_out / count
    else:  # a window between two requests: the next request
        k = int(np.searchsorted(idx.t, start)) % n_all
        requests = 1
        mean_in = float(idx.cum_in[k + 1] - idx.cum_in[k])
        mean_out = float(idx.cum_out[k + 1] - idx.cum_out[k])
    return max(requests, 1), max(round(float(mean_in)), 1), max(round(float(mean_out)), 1)


def _arrivals(fit: dict[str, Any], n: int, rng: np.random.Generator) -> np.ndarray:
    """n arrival times (seconds, trace time) of the fitted hour-of-day Poisson process."""
    hourly = np.asarray(fit["arrivals"]["hourly_rate_per_hour"], dtype=float)
    mean = hourly.mean()
    days = math.ceil(n / (mean * 24) * 1.5) + 2
    rates = np.tile(hourly, days)  # jobs per hour, hour by hour
    cum = np.concatenate([[0.0], np.cumsum(rates)])
    s = np.cumsum(rng.exponential(1.0, n))
    while s[-1] >= cum[-1]:  # extend (never for sane inputs)
        rates = np.concatenate([rates, np.tile(hourly, days)])
        cum = np.concatenate([[0.0], np.cumsum(rates)])
    k = np.searchsorted(cum, s, side="right") - 1
    hours = k + (s - cum[k]) / rates[k]
    return hours * 3600.0


def generate_demo(pools: list[NodePool], config: DemoConfig, cache: CostCache) -> Trace:
    """The demo trace for ``pools`` (the load is relative to their GPUs)."""
    fit = load_fit()
    az = load_azure()
    rng = np.random.default_rng(config.seed)
    n = config.jobs
    mix = fit["gpu_count_mix"]
    counts = np.array([int(k) for k in mix])
    gpus = rng.choice(counts, size=n, p=np.array(list(mix.values())) / sum(mix.values()))
    dur_fit = fit["duration_lognormal_by_gpu_count"]
    duration = np.empty(n)
    for g in counts:
        sel = gpus == g
        d = dur_fit[str(g)]
        duration[sel] = np.clip(
            rng.lognormal(d["ln_mean"], d["ln_sd"], int(sel.sum())), d["min_s"], d["p99_s"]
        )
    serving = rng.random(n) < config.inference_share
    services = sorted(SERVING_MODELS)
    share = np.array([(az.service == s).sum() for s in services], dtype=float)
    service = rng.choice(services, size=n, p=share / share.sum())
    offset = rng.uniform(0.0, az.span_s, n)

    workloads: list[Workload | None] = [None] * n
    for j in np.nonzero(serving)[0]:
        requests, inp, out = _window(az, str(service[j]), float(offset[j]), float(duration[j]))
        workloads[j] = Workload(
            model=_serving_model(str(service[j]), int(gpus[j])),
            gpu_count=int(gpus[j]),
            inference={
                "requests": requests,
                "input_tokens": inp,
                "output_tokens": out,
                "batch_size": SERVING_BATCH,
            },
        )
    # offered load at reference speed: serving jobs estimated on the reference GPU
    serving_idx = np.nonzero(serving)[0]
    ref_time = duration.copy()
    if serving_idx.size:
        table = cache.lookup([workloads[j] for j in serving_idx], [(config.reference_gpu, None, None)])  # type: ignore[misc]
        ref_time[serving_idx] = [
            row[0][1] if row[0][2] else duration[j] for row, j in zip(table, serving_idx, strict=True)
        ]
    total_gpus = sum(p.gpus for p in pools)
    work = float((gpus * ref_time).sum())
    span = work / (config.load * total_gpus)
    raw = _arrivals(fit, n, rng)
    submit = raw * (span / raw[-1]) if raw[-1] > 0 else raw

    builder = TraceBuilder(seed=config.seed + 1, reference_gpu=config.reference_gpu, source="demo")
    for j in range(n):
        job_id = f"demo-{j:05d}"
        w = workloads[j]
        if w is not None:
            builder.add_workload(job_id, float(submit[j]), w)
        else:
            builder.add_duration(job_id, float(submit[j]), int(gpus[j]), float(duration[j]))
    builder.assumptions.extend(
        [
            f"job kind: serving (inference) with probability {config.inference_share:g}, else training, "
            f"drawn with seed {config.seed} (the Alibaba trace records no job kind or model)",
            "GPU count mix, durations (lognormal per GPU count, clipped to the fitted [min, p99]) and the "
            "hour-of-day arrival profile are fitted to the Alibaba 2023 GPU pods (data/demo/alibaba2023_fit.json)",
            "serving jobs serve the Azure LLM inference 2023 requests (code or conv service) arriving in a "
            "window as long as the sampled duration, at the window's mean prompt/output lengths, batch size "
            f"{SERVING_BATCH}; model by service and GPU count: "
            + "; ".join(
                f"{s}: " + ", ".join(f"{g} GPU {m}" for g, m in t.items()) for s, t in SERVING_MODELS.items()
            ),
            f"arrivals compressed in time so that the offered load at {config.reference_gpu} speed is "
            f"{config.load:g} of the pools' {total_gpus} GPUs (arrival span {span / 3600:.1f} h)",
        ]
    )
    trace = builder.build()
    trace.source = f"demo (seed {config.seed})"
    return trace
