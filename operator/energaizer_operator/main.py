"""Run the operator: ``energaizer operator [--namespace NS ... | --all-namespaces]``."""

from __future__ import annotations

import logging

import kopf

from energaizer_operator.settings import OperatorSettings


def run(namespaces: list[str] | None = None, all_namespaces: bool = False) -> None:
    """Run until SIGINT/SIGTERM. Namespaces: the arguments, else ``ENERGAIZER_NAMESPACES``; none or
    ``all_namespaces`` = cluster-wide. Credentials: kopf's default login (in-cluster or kubeconfig)."""
    settings = OperatorSettings.from_env()
    from energaizer_operator.profile_watch import check_profile_setting

    check_profile_setting(settings)  # a profile that does not load stops the operator here, in one line
    watched = [] if all_namespaces else list(namespaces or settings.namespaces)
    level = getattr(logging, settings.log_level)
    kopf.configure(
        debug=level <= logging.DEBUG, verbose=level <= logging.INFO, quiet=level >= logging.WARNING
    )
    logging.getLogger().setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    import energaizer_operator.handlers  # registers the handlers
    import energaizer_operator.measured_handlers  # measured energy (contract section 5)
    import energaizer_operator.profile_watch  # noqa: F401  (the calibration profile, reloaded on change)

    kopf.run(
        standalone=True,  # one replica; no peering objects needed
        clusterwide=not watched,
        namespaces=watched,
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None,
        memo=kopf.Memo(settings=settings),
    )
