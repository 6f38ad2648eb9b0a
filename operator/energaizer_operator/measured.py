"""Measured energy of an AIJob from dcgm-exporter's energy counter (contract section 5), as pure functions.

dcgm-exporter publishes ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` (millijoules since driver load) per GPU
(``UUID``, ``Hostname``, ``modelName``), and, with its Kubernetes pod mapping on, ``namespace``/``pod``/
``container`` while a pod holds the GPU. Attribution, in two steps:

1. *Which GPUs*: every series labelled with one of the job's pods during that pod's run window gives the
   GPU ``UUID`` the pod held (:func:`discover_gpus`).
2. *How much*: ALL series of each such UUID over the run window, whatever their pod labels (a pod's
   labels vanish from the series when it ends, so the samples around its end carry none), merged into
   one counter per GPU; a drop of the counter is a reset (driver reload) and counts as a restart from
   zero, as Prometheus' ``increase`` does (plus the unseen part of that interval at the power of the one
   before); consecutive equal values are one reading (dcgm-exporter reads the counter once per collect
   interval, Prometheus may scrape it more often); the increase between the first and last readings inside
   each pod's window is read, and the two edges are apportioned from the sampling intervals bracketing
   them (:func:`readings`, :func:`window_energy_mj`, :func:`attribute`), their share reported as
   ``interpolatedShare``. Windows of the job's own pods on one GPU are merged, so a retried pod or
   two pods of the job on one GPU are counted once.

A GPU seen with another workload's pod inside the window (time-slicing: dcgm-exporter with
``--kubernetes-virtual-gpus`` repeats the row per sharing pod, with a ``vgpu`` label) or partitioned
with MIG (rows per ``GPU_I_ID``; the device counter covers every instance) gets no number:
:class:`Outcome` says why. Data that is not there yet (no sample after a pod's finish) or a Prometheus
that does not answer is a *retryable* outcome.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import itertools
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from energaizer_operator.inventory import pod_gpu_request

ENERGY_METRIC = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
MILLIJOULES_PER_JOULE = 1000.0
# dcgm-exporter label names (Kubernetes pod mapping; MIG; virtual GPUs)
LABEL_UUID = "UUID"
LABEL_HOSTNAME = "Hostname"
LABEL_MODEL = "modelName"
LABEL_NAMESPACE = "namespace"
LABEL_POD = "pod"
LABEL_GPU_INSTANCE = "GPU_I_ID"
LABEL_VGPU = "vgpu"
FINAL_PHASES = ("Succeeded", "Failed")


class Reason(enum.StrEnum):
    """``reason`` of the ``Measured`` condition."""

    MEASURED = "Measured"
    WAITING = "WaitingForData"  # the job ran, Prometheus has no sample after some pod's end yet
    UNAVAILABLE = "PrometheusUnavailable"  # no answer, an error status, or a malformed answer
    NO_DATA = "NoData"  # Prometheus answers but has no energy series for the job's pods
    GAVE_UP = "NoDataGaveUp"  # NO_DATA for longer than the give-up time: final
    SHARED = "GPUShared"  # time-sliced GPU: final, no number
    MIG = "MIGPartitioned"  # MIG instance: final, no number
    NO_PODS = "NoPods"  # the Job finished but no pod of it ever ran with a start and finish time
    JOB_DELETED = "JobDeleted"  # the Job was deleted before it finished (the AIJob failed with JobDeleted)

    @property
    def final(self) -> bool:
        return self in (
            Reason.MEASURED,
            Reason.GAVE_UP,
            Reason.SHARED,
            Reason.MIG,
            Reason.NO_PODS,
            Reason.JOB_DELETED,
        )

    @property
    def retryable(self) -> bool:
        return not self.final


@dataclass(frozen=True)
class PodRun:
    """One pod of a Job: where it ran, and when its containers held the GPUs (epoch seconds)."""

    namespace: str
    name: str
    node: str | None
    started: float | None
    finished: float | None
    phase: str
    job: str | None = None  # the owning Job's name
    gpus: int = 0  # GPUs the pod requested (its containers' limits of the GPU resource)
    uid: str = ""  # the pod's metadata.uid (relist.py finds the entries of deleted pods by uid)
    # the owning Job's metadata.uid: Jobs of one name follow each other (an AIJob deleted and created again,
    # a Job replaced), and pods of an earlier one may linger (orphaned, or stuck on a lost node)
    job_uid: str = ""
    # metadata.deletionTimestamp: when the pod's grace period ends; a pod still there and not ended after it
    # is one whose kubelet does not confirm (its node lost)
    deleting_at: float | None = None

    @property
    def done(self) -> bool:
        return self.phase in FINAL_PHASES


@dataclass(frozen=True)
class Series:
    """One Prometheus series of the energy counter: labels and (epoch seconds, millijoules) samples."""

    labels: Mapping[str, str]
    samples: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class GPUUse:
    uuid: str
    hostname: str
    model_name: str
    pods: tuple[str, ...]
    seconds: float
    energy_joules: float
    interpolated_energy_joules: float = 0.0  # the part apportioned at the windows' edges

    def wire(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "hostname": self.hostname,
            "modelName": self.model_name,
            "pods": list(self.pods),
            "seconds": round(self.seconds, 3),
            "energyJoules": round(self.energy_joules, 3),
            "interpolatedEnergyJoules": round(self.interpolated_energy_joules, 3),
        }


@dataclass(frozen=True)
class Outcome:
    reason: Reason
    message: str
    energy_joules: float | None = None
    duration_seconds: float | None = None
    devices: tuple[GPUUse, ...] = ()

    @property
    def measured(self) -> bool:
        return self.reason is Reason.MEASURED

    @property
    def interpolated_energy_joules(self) -> float:
        return sum(d.interpolated_energy_joules for d in self.devices)

    @property
    def interpolated_share(self) -> float | None:
        """Share of the energy apportioned at the windows' edges rather than read between two readings
        inside them (0: every joule between readings; 1: the whole run inside single sampling intervals)."""
        if not self.energy_joules:
            return None
        return min(1.0, self.interpolated_energy_joules / self.energy_joules)

    @property
    def average_power_watts(self) -> float | None:
        if self.energy_joules is None or not self.duration_seconds:
            return None
        return self.energy_joules / self.duration_seconds

    def status(self, gpu_type: str | None) -> dict[str, Any]:
        """``status.measured`` (camelCase wire form)."""
        assert self.energy_joules is not None and self.duration_seconds is not None
        out: dict[str, Any] = {
            "energyJoules": round(self.energy_joules, 3),
            "durationSeconds": round(self.duration_seconds, 3),
            "averagePowerWatts": round(self.average_power_watts or 0.0, 3),
            "interpolatedEnergyJoules": round(self.interpolated_energy_joules, 3),
            "interpolatedShare": round(self.interpolated_share or 0.0, 4),
            "gpus": len(self.devices),
            "source": "dcgm",
            "devices": [d.wire() for d in self.devices],
        }
        if gpu_type:
            out["gpuType"] = gpu_type
        return out


# ------------------------------------------------------------------------------------ pod bodies


def parse_time(value: Any) -> float | None:
    """RFC 3339 (Kubernetes ``metav1.Time``) -> epoch seconds; None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def _owner_job(meta: Mapping[str, Any]) -> tuple[str | None, str]:
    """(name, uid) of the Job that owns the pod: its ownerReference, else the labels the Job controller puts
    on every pod it creates (they stay when the Job is deleted with its pods orphaned)."""
    for ref in meta.get("ownerReferences") or []:
        if (
            isinstance(ref, Mapping)
            and ref.get("kind") == "Job"
            and ref.get("apiVersion", "").startswith("batch/")
        ):
            return str(ref.get("name") or "") or None, str(ref.get("uid") or "")
    labels = meta.get("labels") or {}
    name = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
    uid = labels.get("batch.kubernetes.io/controller-uid") or labels.get("controller-uid") or ""
    return name, str(uid)


def pod_run(body: Mapping[str, Any], gpu_resource: str = "nvidia.com/gpu") -> PodRun:
    """A pod body -> its run: the earliest container start and the latest container finish.

    Containers hold the pod's GPUs from their start to their end; a pod whose containers have not all
    terminated has no ``finished`` yet. ``status.startTime`` (kubelet acknowledged the pod, before image
    pulls) is only a fallback start when no container reports one.
    """
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    starts: list[float] = []
    ends: list[float] = []
    all_terminated = True
    statuses = list(status.get("containerStatuses") or [])
    for cs in statuses:
        state = cs.get("state") or {}
        last = cs.get("lastState") or {}
        for st in (last.get("terminated"), state.get("running"), state.get("terminated")):
            if isinstance(st, Mapping) and (t := parse_time(st.get("startedAt"))) is not None:
                starts.append(t)
        term = state.get("terminated")
        if isinstance(term, Mapping) and (t := parse_time(term.get("finishedAt"))) is not None:
            ends.append(t)
        else:
            all_terminated = False
    started = min(starts) if starts else parse_time(status.get("startTime"))
    finished = max(ends) if ends and all_terminated and statuses else None
    job, job_uid = _owner_job(meta)
    return PodRun(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        node=(body.get("spec") or {}).get("nodeName"),
        started=started,
        finished=finished,
        phase=str(status.get("phase") or "Pending"),
        job=job,
        gpus=pod_gpu_request(body.get("spec") or {}, gpu_resource),
        uid=str(meta.get("uid") or ""),
        job_uid=job_uid,
        deleting_at=parse_time(meta.get("deletionTimestamp")),
    )


def ran(pods: Iterable[PodRun]) -> list[PodRun]:
    """Pods that held GPUs over a known window (started and finished)."""
    return [p for p in pods if p.started is not None and p.finished is not None and p.finished >= p.started]


# ------------------------------------------------------------------------------------- PromQL


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def pods_selector(namespace: str, pods: Sequence[str], metric: str = ENERGY_METRIC) -> str:
    alternatives = "|".join(re.escape(p) for p in sorted(set(pods)))
    return f'{metric}{{{LABEL_NAMESPACE}="{_escape(namespace)}",{LABEL_POD}=~"{_escape(alternatives)}"}}'


def uuids_selector(uuids: Iterable[str], metric: str = ENERGY_METRIC) -> str:
    alternatives = "|".join(re.escape(u) for u in sorted(set(uuids)))
    return f'{metric}{{{LABEL_UUID}=~"{_escape(alternatives)}"}}'


# A long job's raw samples come in pieces of at most this long (6 h: 1,440 samples of a 15 s scrape per
# GPU), so that a week-long 64-GPU run is not one answer of millions of samples past the client's timeout
MAX_RANGE_SECONDS = 6 * 3600


def range_query(selector: str, start: float, end: float) -> tuple[str, float]:
    """(expression, evaluation time) returning every raw sample of ``selector`` in ``(start, end]``."""
    seconds = max(1, math.ceil(end - start))
    return f"{selector}[{seconds}s]", end


def range_queries(selector: str, start: float, end: float) -> list[tuple[str, float]]:
    """:func:`range_query` over ``(start, end]`` in consecutive pieces of at most :data:`MAX_RANGE_SECONDS`
    (each ``(a, b]``: together every sample once)."""
    out = []
    while True:
        b = min(end, start + MAX_RANGE_SECONDS)
        out.append(range_query(selector, start, b))
        if b >= end:
            return out
        start = b


def joined_series(pieces: Iterable[Series]) -> list[Series]:
    """The series of consecutive range queries, one per label set, their samples in time order."""
    by_labels: dict[tuple[tuple[str, str], ...], dict[float, float]] = {}
    first: dict[tuple[tuple[str, str], ...], Mapping[str, str]] = {}
    for s in pieces:
        key = tuple(sorted(s.labels.items()))
        first.setdefault(key, s.labels)
        by_labels.setdefault(key, {}).update(s.samples)
    return [Series(first[k], tuple(sorted(v.items()))) for k, v in by_labels.items()]


def parse_matrix(result: Iterable[Mapping[str, Any]]) -> list[Series]:
    """Prometheus ``resultType: matrix`` items -> :class:`Series` (non-finite values dropped)."""
    out: list[Series] = []
    for item in result:
        samples = []
        for t, v in item.get("values") or []:
            value = float(v)
            if math.isfinite(value):
                samples.append((float(t), value))
        out.append(Series(dict(item.get("metric") or {}), tuple(sorted(samples))))
    return out


# --------------------------------------------------------------------------------- attribution


def discover_gpus(
    pods: Sequence[PodRun], series: Iterable[Series], margin_seconds: float
) -> dict[str, set[str]]:
    """GPU UUID -> names of the job's pods seen on it within their own run window (+/- margin)."""
    return {
        uuid: {name for _ns, name in keys} for uuid, keys in _gpus_seen(pods, series, margin_seconds).items()
    }


def _gpus_seen(
    pods: Sequence[PodRun], series: Iterable[Series], margin_seconds: float
) -> dict[str, set[tuple[str, str]]]:
    """GPU UUID -> (namespace, name) of the pods seen on it within their own run window (+/- margin). A
    series names a pod by namespace and name (pods of one name in two namespaces are two pods)."""
    by_key = {(p.namespace, p.name): p for p in pods}
    found: dict[str, set[tuple[str, str]]] = {}
    for s in series:
        key = (s.labels.get(LABEL_NAMESPACE, ""), s.labels.get(LABEL_POD, ""))
        pod = by_key.get(key)
        uuid = s.labels.get(LABEL_UUID)
        if pod is None or not uuid or pod.started is None or pod.finished is None:
            continue
        if any(pod.started - margin_seconds <= t <= pod.finished + margin_seconds for t, _ in s.samples):
            found.setdefault(uuid, set()).add(key)
    return found


def merge_windows(windows: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for a, b in sorted(windows):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def unwrap(samples: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Counter samples (one per timestamp, sorted) -> cumulative energy since the first sample.

    A drop of the counter is a reset (driver reload): the new value is what accrued since the reload, and
    the part of the interval before the reload, which no sample saw, is taken at the power of the
    interval before (at least the new value, as Prometheus' ``increase`` counts it)."""
    out: list[tuple[float, float]] = []
    total = 0.0
    prev: tuple[float, float] | None = None
    slope = 0.0
    for t, v in samples:
        if prev is not None:
            dt = t - prev[0]
            if v >= prev[1]:
                step = v - prev[1]
                slope = step / dt if dt > 0 else slope
            else:
                step = max(v, slope * dt)
            total += step
        prev = (t, v)
        out.append((t, total))
    return out


def _at(curve: Sequence[tuple[float, float]], t: float) -> float:
    """Linear interpolation of a sorted curve at ``t`` (inside its span)."""
    lo, hi = 0, len(curve) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if curve[mid][0] <= t:
            lo = mid
        else:
            hi = mid
    (t0, e0), (t1, e1) = curve[lo], curve[hi]
    if t1 <= t0:
        return e1
    return e0 + (e1 - e0) * (min(max(t, t0), t1) - t0) / (t1 - t0)


@dataclass(frozen=True)
class WindowEnergy:
    """A window's energy (millijoules): ``total_mj``, of which ``edge_mj`` was apportioned from the sampling
    intervals that straddle the window's start and end (the rest is the counter's increase between readings
    inside the window)."""

    total_mj: float
    edge_mj: float


def readings(samples: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Scrapes -> distinct counter readings: a value repeated by consecutive scrapes is one reading, dated by
    the first scrape that showed it. dcgm-exporter reads the counter once per collect interval (``-c``, 30 s
    by default) and Prometheus stamps each scrape with its own time, so a scrape interval shorter than the
    collect interval repeats each reading; a powered GPU's counter always advances, so an unchanged value is
    no new reading (and, kept, would read as zero power between its scrapes)."""
    out: list[tuple[float, float]] = []
    for t, v in samples:
        if not out or v != out[-1][1]:
            out.append((t, v))
    return out


def window_energy_mj(
    curve: Sequence[tuple[float, float]], a: float, b: float, spacing: float
) -> WindowEnergy | None:
    """Energy over [a, b] of an unwrapped curve of readings that has a reading at or after ``b``.

    Between the first and the last reading inside the window it is the counter's increase. Each edge
    (start to first reading inside, last reading inside to end) lies in one sampling interval bracketed by
    the last reading at or before ``a`` (first at or after ``b``), and gets the part of that interval's
    energy the window overlaps: at the job's own average power between its inside readings when there are
    two or more (the bracketing interval's average mixes in the idle or another job's power outside the
    window), never more than the whole interval's energy; otherwise at the interval's average power
    (constant power within a sampling interval). A start before the first reading is extrapolated back at
    the first interval's (or the job's) power by at most 1.5 intervals; None when it is further back.
    """
    inside = [(t, e) for t, e in curve if a <= t <= b]
    before = [(t, e) for t, e in curve if t < a]
    after = next(((t, e) for t, e in curve if t > b), None)
    job_watts = None  # (mJ/s) the job's own power between its readings inside the window
    if len(inside) >= 2 and inside[-1][0] > inside[0][0]:
        job_watts = (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])
    if not inside:  # the whole window inside one sampling interval: its average power
        if after is None:
            return None
        t1, e1 = after
        if before:
            t0, e0 = before[-1]
        elif t1 - a <= 1.5 * max(spacing, 1e-9) and len(curve) >= 2:
            (t0, e0), (t1, e1) = curve[0], curve[1]
        else:
            return None
        interval_mj = e1 - e0
        return WindowEnergy(interval_mj * (b - a) / (t1 - t0), interval_mj * (b - a) / (t1 - t0))
    (t_in, e_in), (t_out, e_out) = inside[0], inside[-1]
    core = e_out - e_in
    edge = 0.0
    if t_in > a:  # the start edge [a, t_in]
        if before:
            t0, e0 = before[-1]
            interval_mj = e_in - e0
            share = interval_mj * (t_in - a) / (t_in - t0)
            edge += min(job_watts * (t_in - a), interval_mj) if job_watts is not None else share
        else:
            if t_in - a > 1.5 * max(spacing, 1e-9):
                return None
            watts = job_watts
            if watts is None:
                later = [(t, e) for t, e in curve if t > t_in]
                if not later:
                    return None
                watts = (later[0][1] - e_in) / (later[0][0] - t_in)
            edge += watts * (t_in - a)
    if t_out < b:  # the end edge [t_out, b]
        if after is None:
            return None
        t1, e1 = after
        interval_mj = e1 - e_out
        share = interval_mj * (b - t_out) / (t1 - t_out)
        edge += min(job_watts * (b - t_out), interval_mj) if job_watts is not None else share
    return WindowEnergy(core + edge, edge)


def merged_samples(series: Iterable[Series]) -> list[tuple[float, float]]:
    """All samples of one GPU's series (rows repeated per pod, per MIG instance, before and after a pod's
    labels vanished), one per timestamp."""
    by_time: dict[float, float] = {}
    for s in series:
        for t, v in s.samples:
            by_time.setdefault(round(t, 3), v)
    return sorted(by_time.items())


def _by_target(series: Iterable[Series]) -> list[list[Series]]:
    """One GPU's series grouped by the scrape target that produced them (Prometheus' ``instance`` and
    ``job`` labels), the target with the most samples first."""
    groups: dict[tuple[str, str], list[Series]] = {}
    for s in series:
        groups.setdefault((s.labels.get("instance", ""), s.labels.get("job", "")), []).append(s)
    return sorted(groups.values(), key=lambda g: -sum(len(s.samples) for s in g))


def _windows_energy_mj(
    samples: Sequence[tuple[float, float]], windows: Sequence[tuple[float, float]]
) -> WindowEnergy | None:
    """The counter's increase over ``windows`` (:func:`window_energy_mj` on the :func:`readings` of
    ``samples``); None when a window is not covered (no reading after its end, or none near its start)."""
    found = readings(samples)
    if not found:
        return None
    curve, spacing = unwrap(found), _spacing(found)
    total = edge = 0.0
    for a, b in windows:
        if curve[-1][0] < b or (got := window_energy_mj(curve, a, b, spacing)) is None:
            return None
        total, edge = total + got.total_mj, edge + got.edge_mj
    return WindowEnergy(total, edge)


def _spacing(samples: Sequence[tuple[float, float]]) -> float:
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(samples) if b[0] > a[0]]
    return statistics.median(gaps) if gaps else 0.0


def _foreign_pods(
    series: Iterable[Series], own: set[tuple[str, str]], window: tuple[float, float], tolerance: float
) -> set[str]:
    """Other workloads' pods seen on the GPU well inside the window (dcgm-exporter refreshes its pod
    mapping once per collection, so a predecessor's labels may linger up to ``tolerance`` into it)."""
    a, b = window
    out: set[str] = set()
    for s in series:
        ns, pod = s.labels.get(LABEL_NAMESPACE, ""), s.labels.get(LABEL_POD, "")
        if not pod or (ns, pod) in own:
            continue
        inside = [t for t, _ in s.samples if a + tolerance < t < b - tolerance]
        if inside:
            out.add(f"{ns}/{pod}")
    return out


def attribute(
    pods: Sequence[PodRun],
    discovery: Iterable[Series],
    gpu_series: Iterable[Series],
    *,
    margin_seconds: float,
) -> Outcome:
    """The job's measured energy, or why there is none.

    ``pods``: the Job's pods (those that never ran are ignored); ``discovery``: series of the energy
    counter labelled with those pods; ``gpu_series``: every series of the GPUs found there over the run
    window +/- ``margin_seconds`` (at least one collection + scrape interval).
    """
    runs = ran(pods)
    if not runs:
        return Outcome(Reason.NO_PODS, "no pod of the Job ran with a recorded start and finish time")
    held = discover_gpus(runs, discovery, margin_seconds)
    if not held:
        names = ", ".join(sorted(p.name for p in runs))
        return Outcome(Reason.NO_DATA, f"no {ENERGY_METRIC} series labelled with pod(s) {names}")
    for p in runs:
        seen = sum(1 for names in held.values() if p.name in names)
        if seen < p.gpus:
            return Outcome(
                Reason.NO_DATA,
                f"pod {p.name} held {p.gpus} GPU(s) but {ENERGY_METRIC} names it on {seen} "
                "(is dcgm-exporter's Kubernetes pod mapping on, on every GPU node?)",
            )
    by_uuid: dict[str, list[Series]] = {}
    for s in gpu_series:
        if (u := s.labels.get(LABEL_UUID)) in held:
            by_uuid.setdefault(u, []).append(s)
    by_name = {p.name: p for p in runs}
    own = {(p.namespace, p.name) for p in runs}
    uses: list[GPUUse] = []
    for uuid in sorted(held):
        series = by_uuid.get(uuid, [])
        if any(s.labels.get(LABEL_GPU_INSTANCE, "") not in ("", None) for s in series):
            return Outcome(
                Reason.MIG,
                f"GPU {uuid} is MIG-partitioned: its energy counter covers every GPU instance, not one pod's",
            )
        samples = merged_samples(series)
        windows = merge_windows(
            (by_name[n].started, by_name[n].finished)  # type: ignore[misc]
            for n in held[uuid]
        )
        # dcgm-exporter refreshes its pod mapping once per collection (30 s by default), so a predecessor's
        # labels can outlive it by a collection plus a scrape interval
        tolerance = max(2.0 * _spacing(samples), margin_seconds / 2.0)
        for w in windows:
            foreign = _foreign_pods(series, own, w, tolerance)
            if foreign:
                return Outcome(
                    Reason.SHARED,
                    f"GPU {uuid} was shared with {', '.join(sorted(foreign))} (time-slicing): "
                    "its energy cannot be split between pods",
                )
        if not samples:
            return Outcome(Reason.NO_DATA, f"no {ENERGY_METRIC} samples of GPU {uuid} in the run window")
        # Several scrape targets of one GPU (two exporters, two scrape jobs) read its counter at their own
        # moments: merged, an older reading of one after a newer one of the other would be a drop, i.e. a
        # reset adding all the counter holds since the driver was loaded. One target that covers every
        # window is used alone (the one with the most samples); the merge is for targets that replaced
        # each other (an exporter restarted on a new address).
        targets = _by_target(series)
        energy: WindowEnergy | None = None
        if len(targets) > 1:
            for target in targets:  # (not ``own``: the job's own pods, for the GPUs after this one)
                if (energy := _windows_energy_mj(merged_samples(target), windows)) is not None:
                    break
        seconds = sum(b - a for a, b in windows)
        if energy is None:
            found = readings(samples)
            curve = unwrap(found)
            spacing = _spacing(found)
            total_mj = edge_mj = 0.0
            for a, b in windows:
                if curve[-1][0] < b:
                    if samples[-1][0] >= b and curve[-1][0] <= a:
                        break  # scraped after the end, but no new reading since before the start
                    return Outcome(
                        Reason.WAITING,
                        f"no reading of GPU {uuid} after {iso_time(b)} yet (pod end); will retry",
                    )
                got = window_energy_mj(curve, a, b, spacing)
                if got is None:
                    return Outcome(Reason.NO_DATA, f"no sample of GPU {uuid} near {iso_time(a)} (pod start)")
                total_mj, edge_mj = total_mj + got.total_mj, edge_mj + got.edge_mj
            else:
                energy = WindowEnergy(total_mj, edge_mj)
        if energy is None or energy.total_mj <= 0:  # a powered GPU's counter always advances
            return Outcome(
                Reason.NO_DATA,
                f"the {ENERGY_METRIC} of GPU {uuid} did not advance over the {seconds:.0f} s the job's pods "
                "held it (a run shorter than 1 s, or an exporter that stopped reading the GPU?)",
            )
        first = series[0].labels if series else {}
        uses.append(
            GPUUse(
                uuid=uuid,
                hostname=str(first.get(LABEL_HOSTNAME, "")),
                model_name=str(first.get(LABEL_MODEL, "")),
                pods=tuple(sorted(held[uuid])),
                seconds=seconds,
                energy_joules=energy.total_mj / MILLIJOULES_PER_JOULE,
                interpolated_energy_joules=energy.edge_mj / MILLIJOULES_PER_JOULE,
            )
        )
    used = [by_name[n] for names in held.values() for n in names]
    duration = max(p.finished for p in used) - min(p.started for p in used)  # type: ignore[type-var,operator]
    energy = sum(u.energy_joules for u in uses)
    return Outcome(
        Reason.MEASURED,
        f"{energy:.4g} J over {duration:.4g} s on {len(uses)} GPU(s) (dcgm; "
        f"{100.0 * sum(u.interpolated_energy_joules for u in uses) / energy:.0f} % apportioned at the edges)",
        energy_joules=energy,
        duration_seconds=float(duration),
        devices=tuple(uses),
    )


# ------------------------------------------------------------------------- time-sliced nodes

SHARING_STRATEGY_LABEL = "nvidia.com/gpu.sharing-strategy"  # GPU Feature Discovery: none | time-slicing | mps
REPLICAS_LABEL = "nvidia.com/gpu.replicas"  # GPU Feature Discovery: replicas per GPU under sharing


def node_time_sliced(labels: Mapping[str, str], product_label: str = "nvidia.com/gpu.product") -> bool:
    """A node whose GPUs the device plugin hands to several pods at once (GPU Feature Discovery labels)."""
    if labels.get(SHARING_STRATEGY_LABEL, "none") not in ("", "none"):
        return True
    try:
        if int(labels.get(REPLICAS_LABEL, "1") or 1) > 1:
            return True
    except ValueError:
        pass
    return str(labels.get(product_label, "")).upper().endswith("-SHARED")


def overlapping(pods: Sequence[PodRun], others: Iterable[PodRun], now: float) -> list[PodRun]:
    """Other GPU pods on the nodes of ``pods`` whose run overlapped one of theirs (still running = now)."""
    own = {(p.namespace, p.name) for p in pods}
    out = []
    for o in others:
        if (o.namespace, o.name) in own or o.started is None or o.gpus <= 0:
            continue
        end = o.finished if o.finished is not None else now
        if any(
            p.node == o.node
            and p.started is not None
            and p.finished is not None
            and o.started < p.finished
            and end > p.started
            for p in pods
        ):
            out.append(o)
    return out


def hidden_sharing(
    held: Mapping[str, set[str]],
    neighbours: Sequence[PodRun],
    series: Iterable[Series],
    margin_seconds: float,
    now: float,
) -> Outcome | None:
    """On a time-sliced node dcgm-exporter without ``--kubernetes-virtual-gpus`` labels a shared GPU with one
    of its pods only: a neighbour that overlapped the job and that the exporter names on no GPU may have
    shared the job's GPUs unseen; one named on a job's GPU did share it. None when every neighbour is seen
    on other GPUs only."""
    neighbours = [n if n.finished is not None else dataclasses.replace(n, finished=now) for n in neighbours]
    where: dict[tuple[str, str], set[str]] = {}  # (namespace, pod) -> the GPUs it is named on
    for uuid, keys in _gpus_seen(neighbours, series, margin_seconds).items():
        for key in keys:
            where.setdefault(key, set()).add(uuid)
    for n in neighbours:
        uuids = where.get((n.namespace, n.name), set())
        if uuids & set(held):
            shared = sorted(uuids & set(held))[0]
            return Outcome(
                Reason.SHARED,
                f"GPU {shared} was shared with {n.namespace}/{n.name} (time-slicing): "
                "its energy cannot be split between pods",
            )
        if not uuids:
            return Outcome(
                Reason.SHARED,
                f"pod {n.namespace}/{n.name} ran at the same time on time-sliced node {n.node} and "
                f"{ENERGY_METRIC} names it on no GPU: it may have shared the job's GPUs (run dcgm-exporter "
                "with --kubernetes-virtual-gpus)",
            )
    return None


def iso_time(t: float) -> str:
    """Epoch seconds -> RFC 3339 (UTC, whole seconds)."""
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------- retries


@dataclass
class Backoff:
    """Per-AIJob retry schedule: ``base * 2**attempts`` seconds, capped at ``cap``."""

    base_seconds: float
    cap_seconds: float
    attempts: dict[str, int] = field(default_factory=dict)
    next_at: dict[str, float] = field(default_factory=dict)

    def due(self, key: str, now: float) -> bool:
        return now >= self.next_at.get(key, 0.0)

    def failed(self, key: str, now: float) -> float:
        n = self.attempts.get(key, 0)
        delay = min(self.cap_seconds, self.base_seconds * 2**n)
        self.attempts[key] = n + 1
        self.next_at[key] = now + delay
        return delay

    def forget(self, key: str) -> None:
        self.attempts.pop(key, None)
        self.next_at.pop(key, None)
