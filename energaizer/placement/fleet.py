"""Fleet energy: what a placement adds to what the GPUs of a cluster draw, and what a plain scheduler
would have spent.

A job's own estimate (``energy[j, t]``, board energy of its GPUs while it runs) is not what the
cluster saves by placing it well: the cluster's GPUs draw idle power whenever they run nothing.
Two fleet modes say what idle GPUs cost:

* ``static``: every GPU stays powered (a fixed on-premises cluster). Running job j on type t for
  ``duration[j, t]`` seconds on ``demand[j]`` GPUs replaces that much idle draw, so the marginal
  fleet energy is the job's energy above the idle power its GPUs draw anyway::

      E_jt - demand_j * duration_jt * idle_power_t          (clipped at 0)

  Over a fixed horizon the fleet energy is ``sum_t GPUs_t * idle_power_t * horizon`` plus the sum
  of these marginals, so minimising them minimises the fleet energy exactly.
* ``elastic``: node pools scale down after an idle timeout (cluster-autoscaler's
  ``scale-down-unneeded-time``, 10 min by default). A GPU kept busy by a job would otherwise be
  off, so the job pays its whole energy, the idle floor included, plus its GPUs' idle power for
  the timeout after it ends. A job also keeps its nodes powered, so the GPUs of its nodes that it
  leaves idle draw idle power while it keeps them up. When it needs nodes powered up (its GPUs do
  not fit on the idle GPUs of powered nodes, ``idle_powered_gpus``; none when not given) it pays
  those nodes' other GPUs for its whole run plus the idle timeout after it (the power-on of a
  node). When it fills idle GPUs of powered nodes, those stay up anyway for
  ``powered_for_seconds`` (the longest remaining run of the jobs already there plus the idle
  timeout; 0 when not given): it replaces their idle draw meanwhile and pays only what it keeps up
  beyond that, its own GPUs' tail and the node's other GPUs, less the GPUs the pool's usual load
  fills then (``typical_busy_gpus``) for as long as that load is known to last
  (``typical_busy_seconds``, the window it was averaged over; the whole time when not given). A
  slow job that keeps a node busy pays that node's idle power; a short one on a node that stays
  needed anyway pays its energy less the idle draw it replaces (the static marginal)::

      E_jt + idle_power_t * (demand_j * idle_timeout_s + idle_gpu_s_jt - saved_jt)
      new_gpus = max(demand_j - idle_powered_gpus_t, 0)
      node_jt = ceil(n / gpus_per_node_t) * gpus_per_node_t - n      (n = new_gpus if new_gpus > 0
                                                                       else demand_j)
      kept_jt = duration_jt + idle_timeout_s                          if new_gpus > 0
                max(duration_jt + idle_timeout_s - powered_for_seconds_t, 0)   else
      idle_gpu_s_jt = node_jt * kept_jt                               if new_gpus > 0
                      max(node_jt - typical_busy_gpus_t, 0) * w + node_jt * (kept_jt - w)
                                                                      else
      w = min(kept_jt, typical_busy_seconds)
      saved_jt = 0                                                    if new_gpus > 0
                 demand_j * (min(duration_jt, powered_for_seconds_t)
                             + idle_timeout_s - min(kept_jt, idle_timeout_s))   else

  clipped at 0; without ``gpus_per_node`` the node terms (``idle_gpu_s``, ``saved``) are left out.

``objective_matrix(energy, duration, objective, fleet=FleetModel(...))`` uses these marginals in
place of the job energy (``energy``, and the energy term of ``energy-delay``).

:func:`counterfactual_energy` gives, for one job, the energy on the type a plain scheduler would
have used (the first type in the cluster's default order that is feasible and has room) and on
the worst feasible type: the operator reports savings against both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

DEFAULT_IDLE_TIMEOUT_SECONDS = 600.0  # cluster-autoscaler --scale-down-unneeded-time default


class FleetMode(StrEnum):
    """What idle GPUs cost: ``static`` = always powered; ``elastic`` = nodes scale down when idle."""

    STATIC = "static"
    ELASTIC = "elastic"


FLEET_MODES: tuple[str, ...] = tuple(m.value for m in FleetMode)


@dataclass(frozen=True)
class FleetModel:
    """The fleet mode, each type's idle power per GPU (``(T,)`` watts) and the elastic idle timeout.

    Elastic only (optional, ``(T,)``): ``gpus_per_node`` of each type; ``idle_powered_gpus``, the
    GPUs of each type on powered nodes that run nothing now (a job placed there powers up no
    node; without it every job is assumed to power up its own nodes); ``powered_for_seconds``,
    how long those nodes stay needed by the jobs already running on them plus the idle timeout;
    ``typical_busy_gpus``, the GPUs of each type usually busy (e.g. a recent average), which fill
    the node's other GPUs after that for ``typical_busy_seconds`` (how far ahead that load is known:
    the window it was averaged over; a run beyond it keeps the node's other GPUs powered alone;
    None: for the whole run)."""

    mode: FleetMode
    idle_power_watts: np.ndarray
    idle_timeout_seconds: float = DEFAULT_IDLE_TIMEOUT_SECONDS
    gpus_per_node: np.ndarray | None = None
    idle_powered_gpus: np.ndarray | None = None
    powered_for_seconds: np.ndarray | None = None
    typical_busy_gpus: np.ndarray | None = None
    typical_busy_seconds: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", FleetMode(self.mode))
        idle = np.asarray(self.idle_power_watts, dtype=float).reshape(-1)
        if (idle < 0).any() or not np.isfinite(idle).all():
            raise ValueError("idle_power_watts must be finite and >= 0")
        if not (math.isfinite(self.idle_timeout_seconds) and self.idle_timeout_seconds >= 0):
            raise ValueError("idle_timeout_seconds must be finite and >= 0")
        if self.typical_busy_seconds is not None and not self.typical_busy_seconds >= 0:
            raise ValueError("typical_busy_seconds must be >= 0")
        object.__setattr__(self, "idle_power_watts", idle)
        for name in ("gpus_per_node", "idle_powered_gpus", "powered_for_seconds", "typical_busy_gpus"):
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value, dtype=float).reshape(-1)
            if arr.shape != idle.shape or (arr < 0).any() or not np.isfinite(arr).all():
                raise ValueError(f"{name} must have one finite value >= 0 per type ({idle.size})")
            if name == "gpus_per_node" and (arr < 1).any():
                raise ValueError("gpus_per_node must be >= 1")
            object.__setattr__(self, name, arr)


def marginal_fleet_energy(
    energy: np.ndarray, duration: np.ndarray, demand: np.ndarray, fleet: FleetModel, *, clip: bool = True
) -> np.ndarray:
    """(J, T) marginal fleet energy in joules of each job on each type under ``fleet.mode`` (see the
    module docstring). Non-finite energy or duration stays ``np.inf``. ``clip=False`` keeps a
    negative static marginal (an estimate below the idle floor), as a lower bound needs."""
    energy = np.asarray(energy, dtype=float)
    duration = np.asarray(duration, dtype=float)
    demand = np.asarray(demand, dtype=float).reshape(-1, 1)
    idle = fleet.idle_power_watts.reshape(1, -1)
    if (
        energy.shape != duration.shape
        or energy.shape[1:] != idle.shape[1:]
        or energy.shape[0] != demand.shape[0]
    ):
        raise ValueError(
            f"energy {energy.shape}, duration {duration.shape}, demand ({demand.shape[0]},) and "
            f"idle_power_watts ({idle.shape[1]},) do not match"
        )
    bad = ~np.isfinite(energy) | ~np.isfinite(duration) | (energy < 0) | (duration < 0)
    with np.errstate(invalid="ignore", over="ignore"):
        if fleet.mode is FleetMode.STATIC:
            out = energy - demand * duration * idle
            if clip:
                out = np.maximum(out, 0.0)
        else:
            timeout = fleet.idle_timeout_seconds
            out = energy + demand * timeout * idle
            if fleet.gpus_per_node is not None:
                per_node = fleet.gpus_per_node.reshape(1, -1)
                spare = 0.0 if fleet.idle_powered_gpus is None else fleet.idle_powered_gpus.reshape(1, -1)
                new = np.maximum(demand - spare, 0.0)
                g = np.where(new > 0, new, demand)
                unused = np.ceil(g / per_node - 1e-9) * per_node - g
                kept_for = (
                    0.0 if fleet.powered_for_seconds is None else fleet.powered_for_seconds.reshape(1, -1)
                )
                # the node stays up until the job's end plus the timeout; powered nodes until
                # ``kept_for`` anyway: the job pays what it adds beyond that (new nodes: all of it)
                kept = np.where(new > 0, duration + timeout, np.maximum(duration + timeout - kept_for, 0.0))
                idle_gpu_s = unused * kept
                if fleet.typical_busy_gpus is not None:
                    # after the jobs there now, the pool's usual load fills the node's other GPUs,
                    # for as long as that load is known to last
                    filled = fleet.typical_busy_gpus.reshape(1, -1)
                    known = (
                        kept
                        if fleet.typical_busy_seconds is None
                        else np.minimum(kept, fleet.typical_busy_seconds)
                    )
                    idle_gpu_s = np.where(
                        new > 0,
                        idle_gpu_s,
                        np.maximum(unused - filled, 0.0) * known + unused * (kept - known),
                    )
                # on idle GPUs of powered nodes the job replaces their idle draw while they stay up,
                # and its own GPUs' tail is paid only beyond ``kept_for``
                saved = np.where(
                    new > 0,
                    0.0,
                    demand * (np.minimum(duration, kept_for) + timeout - np.minimum(kept, timeout)),
                )
                out = np.maximum(out + (idle_gpu_s - saved) * idle, 0.0)
    out = np.where(bad, np.inf, out)
    return out


@dataclass(frozen=True)
class Counterfactual:
    """One job's energy on the type a plain scheduler would have used and on the worst feasible type.

    ``plain_had_room`` is False when no feasible type had room: a plain scheduler would then have
    waited for the first feasible type in the default order, which is the one reported."""

    plain_gpu_type: str
    plain_energy_joules: float
    plain_had_room: bool
    worst_gpu_type: str
    worst_energy_joules: float

    def savings_joules(self, chosen_energy_joules: float) -> tuple[float, float]:
        """(against the plain scheduler's type, against the worst feasible type); the first is
        negative when the chosen type costs more than the plain scheduler's."""
        return (
            self.plain_energy_joules - chosen_energy_joules,
            max(0.0, self.worst_energy_joules - chosen_energy_joules),
        )


def counterfactual_energy(
    estimates: Mapping[str, float | None],
    default_order: Sequence[str],
    free_gpus: Mapping[str, float],
    demand: float,
) -> Counterfactual | None:
    """Counterfactual energies for one job.

    ``estimates``: energy in joules per GPU type (None, NaN or inf = infeasible); ``default_order``:
    the order in which a plain scheduler tries the cluster's types (types missing from it are
    tried after it, in the order of ``estimates``); ``free_gpus``: free GPUs per type; ``demand``:
    the GPUs the job needs. None when no type is feasible."""
    feasible = {
        t: float(e)
        for t, e in estimates.items()
        if e is not None and math.isfinite(float(e)) and float(e) >= 0
    }
    if not feasible:
        return None
    order = [t for t in dict.fromkeys([*default_order, *estimates]) if t in feasible]
    with_room = [t for t in order if free_gpus.get(t, 0.0) + 1e-9 >= demand]
    plain = with_room[0] if with_room else order[0]
    worst = max(order, key=lambda t: (feasible[t], -order.index(t)))
    return Counterfactual(
        plain_gpu_type=plain,
        plain_energy_joules=feasible[plain],
        plain_had_room=bool(with_room),
        worst_gpu_type=worst,
        worst_energy_joules=feasible[worst],
    )
