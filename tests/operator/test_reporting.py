"""Status writes that carry ``conditions`` never land over a newer list (the measurement and the Job
mirror write one AIJob's conditions concurrently; a merge patch replaces the whole list)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from energaizer_operator import kube, reporting
from energaizer_operator.models import Phase
from energaizer_operator.records import AIJobRecord
from energaizer_operator.reporting import Condition, patch_status_merged, status_body


class FakeApiServer:
    """One AIJob behind merge-patches of its status, with the API server's optimistic concurrency: a
    body carrying a stale ``metadata.resourceVersion`` gets 409 Conflict."""

    def __init__(self, conditions: list[dict[str, Any]], resource_version: int) -> None:
        self.obj: dict[str, Any] = {
            "metadata": {"resourceVersion": str(resource_version)},
            "status": {"phase": "Running", "conditions": conditions},
        }
        self.patches: list[tuple[dict[str, Any], str | None]] = []
        self.reads = 0

    def read(self, namespace: str, name: str) -> dict[str, Any]:
        self.reads += 1
        return copy.deepcopy(self.obj)

    def patch(self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None = None):
        self.patches.append((copy.deepcopy(status), resource_version))
        current = self.obj["metadata"]["resourceVersion"]
        if resource_version is not None and resource_version != current:
            raise kube.ApiException(status=409, reason="Conflict")
        self.obj["status"].update(copy.deepcopy(status))
        self.obj["metadata"]["resourceVersion"] = str(int(current) + 1)
        return copy.deepcopy(self.obj)


@pytest.fixture
def server(monkeypatch):
    running = {"type": "Running", "status": "True", "reason": "Running", "message": "Job j"}
    measured = {"type": "Measured", "status": "False", "reason": "GPUShared", "message": "shared"}
    fake = FakeApiServer([running, measured], resource_version=8)  # Measured written at version 8
    monkeypatch.setattr(kube, "read_aijob", fake.read)
    monkeypatch.setattr(kube, "patch_aijob_status", fake.patch)
    return fake


def test_a_conditions_write_built_on_a_stale_list_is_rebuilt_on_the_current_one(server):
    stale = [{"type": "Running", "status": "True", "reason": "Running", "message": "Job j"}]  # at version 7
    done = Condition("Running", False, "Succeeded", "Job j")
    patch_status_merged("default", "a", "7", stale, lambda now: status_body(now, Phase.SUCCEEDED, [done]))
    (first, rv1), (_second, rv2) = server.patches
    assert rv1 == "7" and rv2 == "8" and server.reads == 1
    assert [c["type"] for c in first["conditions"]] == ["Running"]  # refused: it would drop Measured
    final = {c["type"]: c for c in server.obj["status"]["conditions"]}
    assert final["Measured"]["reason"] == "GPUShared"
    assert final["Running"]["reason"] == "Succeeded" and final["Running"]["status"] == "False"
    assert server.obj["status"]["phase"] == "Succeeded"


def test_a_write_without_conditions_is_not_made_conditional(server):
    patch_status_merged("default", "a", "7", [], lambda now: status_body(now, Phase.SUCCEEDED, []))
    assert server.patches == [({"phase": "Succeeded"}, None)] and server.reads == 0


@pytest.mark.parametrize(
    ("http_status", "attempts"), [(409, reporting.CONFLICT_ATTEMPTS), (403, 1)], ids=["conflict", "forbidden"]
)
def test_conflicts_are_retried_a_bounded_number_of_times_other_errors_not(
    server, monkeypatch, http_status, attempts
):
    def refuse(namespace, name, status, resource_version=None):
        server.patches.append((status, resource_version))
        raise kube.ApiException(status=http_status, reason="refused")

    monkeypatch.setattr(kube, "patch_aijob_status", refuse)
    cond = Condition("Placed", True, "Placed", "h100")
    with pytest.raises(kube.ApiException):
        patch_status_merged("default", "a", "8", [], lambda now: status_body(now, None, [cond]))
    assert len(server.patches) == attempts and server.reads == attempts - 1


def _record(conditions: list[dict[str, Any]], resource_version: str) -> AIJobRecord:
    return AIJobRecord(
        namespace="default",
        name="a",
        uid="u",
        generation=1,
        phase=Phase.ESTIMATED,
        observed_generation=1,
        spec=None,
        conditions=tuple(conditions),
        resource_version=resource_version,
    )


async def test_a_status_write_after_our_own_patch_is_built_on_the_version_it_returned(server):
    """The placer patches the AIJob's annotations, then writes Placed: built on the record it cached
    before its own patch, that write conflicts every time (a 409 and a re-read per placed AIJob)."""
    cached = _record(server.obj["status"]["conditions"], "8")
    own_patch = server.patch("default", "a", {"phase": "Estimated"})  # version 8 -> 9, as an annotation patch
    server.patches.clear()
    placed = Condition("Placed", True, "Placed", "h100")
    await reporting.report(cached.written(own_patch), Phase.PLACED, placed, None)
    assert [rv for _, rv in server.patches] == ["9"] and server.reads == 0
    final = {c["type"] for c in server.obj["status"]["conditions"]}
    assert final == {"Running", "Measured", "Placed"} and server.obj["status"]["phase"] == "Placed"


def test_a_returned_body_without_a_version_leaves_the_record_as_it_was():
    rec = _record([{"type": "Running", "status": "True"}], "8")
    assert rec.written({}) is rec and rec.written({"metadata": {}}) is rec
    fresh = rec.written({"metadata": {"resourceVersion": 9}, "status": {"conditions": [{"type": "Placed"}]}})
    assert fresh.resource_version == "9" and [c["type"] for c in fresh.conditions] == ["Placed"]


async def test_a_write_rebuilt_after_a_conflict_is_not_written_to_an_aijob_created_again(server):
    """The AIJob was deleted and created again under its name (``kubectl delete``, then ``apply``) while a
    write about the old one was on its way: the 409 (another object, another resourceVersion) made it read
    the AIJob again by name and write the old one's phase and conditions into the new one. Now the re-read
    is checked against the uid the write is about: 404, as for an AIJob deleted, and nothing written."""
    server.obj["metadata"]["uid"] = "uid-new"
    old = _record([{"type": "Running", "status": "True", "reason": "Running", "message": "Job j"}], "7")
    done = Condition("Running", False, "Succeeded", "Job j")
    with pytest.raises(kube.ApiException) as caught:
        await reporting.report(old, Phase.SUCCEEDED, done, None)  # (its uid is "u")
    assert caught.value.status == 404
    assert len(server.patches) == 1 and server.obj["status"]["phase"] == "Running"  # the refused one only
    server.obj["metadata"]["uid"] = "u"  # the AIJob itself: rebuilt and written as before
    await reporting.report(old, Phase.SUCCEEDED, done, None)
    assert server.obj["status"]["phase"] == "Succeeded"
