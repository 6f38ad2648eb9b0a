"""GPUs held by the pods of the namespaces the operator does not watch.

kopf watches every kind in one set of namespaces: with ``ENERGAIZER_NAMESPACES`` set, the pod index
holds the pods of those namespaces only, and a GPU another team's pod holds on a shared node counted as
free (the operator placed an AIJob there, whose pods then stayed Pending while another type had room).

Every ``ENERGAIZER_OTHER_PODS_INTERVAL_SECONDS`` each replica (a standby's view must be right when it
leads) lists the cluster's bound, unfinished pods with the operator's own API client (paged,
``fieldSelector=spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed``, read from etcd) and keeps
the GPU requests of those outside the watched namespaces (:func:`other_namespaces_pods`); the capacity
adds that snapshot to the pod index (:class:`~energaizer_operator.loops.OtherPods`), and the operator
places nothing before the first pass is over. Between two lists a pod started meanwhile counts as free
and one ended as busy, for at most one interval. A list the API refuses (403: no cluster-wide ``list`` on
pods in the operator's RBAC) is one warning naming the missing rule; the snapshot stays empty (other
namespaces' GPUs count as free) and the next pass tries again. Any other failure keeps the last snapshot
until a pass succeeds. Without ``ENERGAIZER_NAMESPACES`` (the operator watches every namespace) nothing
is listed: the pod index has every pod.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

import urllib3

from energaizer_operator import kube
from energaizer_operator.inventory import PodGPUs, pod_gpus
from energaizer_operator.loops import OtherPods
from energaizer_operator.settings import OperatorSettings

logger = logging.getLogger("energaizer_operator.other_pods")

PODS_PATH = "/api/v1/pods"
BOUND_UNFINISHED = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"


def other_namespaces_pods(
    items: Iterable[Mapping[str, Any]], watched: Collection[str], gpu_resource: str
) -> tuple[PodGPUs, ...]:
    """The GPUs held by the bound, unfinished pods of ``items`` outside the ``watched`` namespaces (those
    are in the pod index already)."""
    found = []
    for item in items:
        if (item.get("metadata") or {}).get("namespace") in watched:
            continue
        pod = pod_gpus(item, gpu_resource=gpu_resource)
        if pod is not None:
            found.append(pod)
    return tuple(found)


class OtherPodsLister:
    """The periodic list of :mod:`energaizer_operator.other_pods` (one per replica)."""

    def __init__(
        self,
        settings: OperatorSettings,
        others: OtherPods,
        *,
        list_items: Callable[..., Iterator[dict[str, Any]]] = kube.list_items,
    ) -> None:
        self.settings, self.others, self.list_items = settings, others, list_items
        self._refused = False
        others.ready = False  # no placement until the first pass is over, whatever its outcome

    def _list(self) -> tuple[PodGPUs, ...]:
        items = self.list_items(PODS_PATH, field_selector=BOUND_UNFINISHED)
        return other_namespaces_pods(items, set(self.settings.namespaces), self.settings.gpu_resource)

    async def refresh(self) -> None:
        """One pass: replace the snapshot, or keep it (and say why) when the list fails."""
        try:
            await self._refresh()
        finally:
            self.others.ready = True

    async def _refresh(self) -> None:
        try:
            pods = await asyncio.to_thread(self._list)
        except (kube.ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            status = getattr(exc, "status", None)
            if status in (401, 403):
                self.others.pods = ()
                if not self._refused:
                    logger.warning(
                        "listing the pods of every namespace was refused (HTTP %s): GPUs held by pods outside "
                        "%s count as free. Grant list on pods cluster-wide (the chart's ClusterRole does "
                        "unless operator.otherPodsIntervalSeconds is 0) or set "
                        "ENERGAIZER_OTHER_PODS_INTERVAL_SECONDS=0",
                        status,
                        ", ".join(self.settings.namespaces),
                    )
                self._refused = True
                return
            logger.warning(
                "listing the pods of other namespaces failed (%s); keeping the last list until the next pass",
                status or type(exc).__name__,
            )
            return
        if self._refused:
            logger.info("listing the pods of every namespace works again")
        self._refused = False
        self.others.pods = pods

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # never the end of the loop
                logger.exception("listing the pods of other namespaces failed")
            await asyncio.sleep(self.settings.other_pods_interval_seconds)
