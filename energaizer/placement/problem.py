"""The placement problem and its result: jobs x GPU types, a cost per pair, demands and capacities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from energaizer.placement.fleet import FleetModel, marginal_fleet_energy

Objective = Literal["energy", "time", "energy-delay"]
OBJECTIVES: tuple[str, ...] = ("energy", "time", "energy-delay")
Solver = Literal["milp", "assignment", "greedy", "trivial"]

REASON_CAPACITY = "capacity exhausted: every feasible type is full"


@dataclass(frozen=True)
class PlacementProblem:
    """Place each job on at most one GPU type.

    ``cost[j, t]`` is the objective of job j on type t (``np.inf`` = infeasible), ``demand[j]`` the
    GPUs job j needs on one type, ``capacity[t]`` the free GPUs of type t. ``infeasible_reasons``
    (optional, ``(J, T)`` strings) explains infinite costs; ``priority`` (optional, ``(J,)``, > 0)
    weighs a job in the "place as many as possible" stage (default 1 each).
    """

    job_ids: Sequence[str]
    type_ids: Sequence[str]
    cost: np.ndarray
    demand: np.ndarray
    capacity: np.ndarray
    infeasible_reasons: Sequence[Sequence[str]] | None = None
    priority: np.ndarray | None = None

    def __post_init__(self) -> None:
        cost = np.asarray(self.cost, dtype=float)
        j, t = len(self.job_ids), len(self.type_ids)
        if cost.shape != (j, t):
            raise ValueError(f"cost has shape {cost.shape}, expected ({j}, {t})")
        if np.isnan(cost).any():
            raise ValueError("cost contains NaN (use np.inf for infeasible pairs)")
        if (cost < 0).any():
            raise ValueError("cost must be >= 0")
        demand = np.asarray(self.demand, dtype=float).reshape(-1)
        capacity = np.asarray(self.capacity, dtype=float).reshape(-1)
        if demand.shape != (j,) or capacity.shape != (t,):
            raise ValueError(f"demand must have shape ({j},) and capacity ({t},)")
        if (demand <= 0).any() or not np.isfinite(demand).all():
            raise ValueError("demand must be finite and > 0")
        if (capacity < 0).any() or not np.isfinite(capacity).all():
            raise ValueError("capacity must be finite and >= 0")
        priority = None
        if self.priority is not None:
            priority = np.asarray(self.priority, dtype=float).reshape(-1)
            if priority.shape != (j,) or (priority <= 0).any() or not np.isfinite(priority).all():
                raise ValueError(f"priority must have shape ({j},) and be finite and > 0")
        if self.infeasible_reasons is not None and (
            len(self.infeasible_reasons) != j or any(len(r) != t for r in self.infeasible_reasons)
        ):
            raise ValueError(f"infeasible_reasons must be {j} rows of {t} strings")
        object.__setattr__(self, "cost", cost)
        object.__setattr__(self, "demand", demand)
        object.__setattr__(self, "capacity", capacity)
        object.__setattr__(self, "priority", priority)

    @property
    def n_jobs(self) -> int:
        return len(self.job_ids)

    @property
    def n_types(self) -> int:
        return len(self.type_ids)

    @property
    def weights(self) -> np.ndarray:
        """Per-job weight of being placed (the priority, 1 by default)."""
        return self.priority if self.priority is not None else np.ones(self.n_jobs)

    def usable(self) -> np.ndarray:
        """(J, T) bool: finite cost and the job's demand fits in the type's total free capacity."""
        return np.isfinite(self.cost) & (self.demand[:, None] <= self.capacity[None, :] + 1e-9)


@dataclass
class PlacementResult:
    """``assignment[j]`` is a type index or -1 (unplaced); ``reasons[j]`` is "" when placed."""

    assignment: np.ndarray
    objective: float
    placed: int
    solver: str
    optimal: bool
    lower_bound: float | None = None
    reasons: list[str] = field(default_factory=list)
    placed_weight: float = 0.0
    seconds: float = 0.0

    def type_of(self, problem: PlacementProblem, j: int) -> str | None:
        """The type id job ``j`` went to, or None."""
        t = int(self.assignment[j])
        return None if t < 0 else str(problem.type_ids[t])


def objective_matrix(
    energy: np.ndarray,
    duration: np.ndarray,
    objective: Objective,
    *,
    fleet: FleetModel | None = None,
    demand: np.ndarray | None = None,
) -> np.ndarray:
    """Cost matrix for an objective: ``energy`` (J), ``time`` (s) or ``energy-delay`` (J*s).

    With ``fleet`` (and ``demand``, the GPUs of each job), the energy term is the marginal fleet
    energy of that fleet mode (:func:`energaizer.placement.fleet.marginal_fleet_energy`) instead of
    the job's own energy; ``time`` is unchanged. Non-finite or negative inputs stay infeasible
    (``np.inf``).
    """
    energy = np.asarray(energy, dtype=float)
    duration = np.asarray(duration, dtype=float)
    if energy.shape != duration.shape:
        raise ValueError("energy and duration must have the same shape")
    bad = ~np.isfinite(energy) | ~np.isfinite(duration) | (energy < 0) | (duration < 0)
    if fleet is not None and objective != "time":
        if demand is None:
            raise ValueError("a fleet objective needs the demand (GPUs) of each job")
        energy = marginal_fleet_energy(energy, duration, demand, fleet)
    if objective == "energy":
        out = energy.copy()
    elif objective == "time":
        out = duration.copy()
    elif objective == "energy-delay":
        with np.errstate(invalid="ignore", over="ignore"):
            out = energy * duration
    else:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    out[bad | np.isnan(out)] = np.inf
    return out


def evaluate(problem: PlacementProblem, assignment: np.ndarray) -> tuple[float, float, int]:
    """(total cost, placed weight, placed count) of an assignment (no feasibility check)."""
    placed = assignment >= 0
    idx = np.nonzero(placed)[0]
    cost = float(problem.cost[idx, assignment[idx]].sum()) if idx.size else 0.0
    return cost, float(problem.weights[placed].sum()), int(placed.sum())


def is_feasible(problem: PlacementProblem, assignment: np.ndarray) -> bool:
    """True when no job sits on an infinite cost and no type holds more than its capacity."""
    placed = assignment >= 0
    idx = np.nonzero(placed)[0]
    if idx.size and not np.isfinite(problem.cost[idx, assignment[idx]]).all():
        return False
    load = np.bincount(assignment[idx], weights=problem.demand[idx], minlength=problem.n_types)
    return bool((load <= problem.capacity + 1e-9).all())


def explain(problem: PlacementProblem, assignment: np.ndarray) -> list[str]:
    """Per job: "" when placed, else why not."""
    usable = problem.usable().any(axis=1)
    finite = np.isfinite(problem.cost).any(axis=1)
    out: list[str] = []
    for j in range(problem.n_jobs):
        if assignment[j] >= 0:
            out.append("")
        elif not finite[j]:
            out.append("no feasible type" + _detail(problem, j))
        elif not usable[j]:
            out.append(f"demand {problem.demand[j]:g} GPUs exceeds the free capacity of every feasible type")
        else:
            out.append(REASON_CAPACITY)
    return out


def _detail(problem: PlacementProblem, j: int) -> str:
    if problem.infeasible_reasons is None:
        return ""
    parts = [f"{problem.type_ids[t]}: {r}" for t, r in enumerate(problem.infeasible_reasons[j]) if r]
    return (": " + "; ".join(parts)) if parts else ""
