"""Run the operator: ``energaizer operator [--namespace NS ... | --all-namespaces]``."""

from __future__ import annotations

import logging

import kopf

from energaizer.errors import InvalidInputError
from energaizer_operator import kube
from energaizer_operator.settings import OperatorSettings


def run(
    namespaces: list[str] | None = None, all_namespaces: bool = False, profile: str | None = None
) -> None:
    """Run until SIGINT/SIGTERM. Namespaces: the arguments, else ``ENERGAIZER_NAMESPACES``; none or
    ``all_namespaces`` = cluster-wide. ``profile``: the calibration profile file (``--profile``), in place
    of ``ENERGAIZER_PROFILE``. Credentials: in-cluster service account, else kubeconfig; with neither,
    ``InvalidInputError`` (one line) before anything starts."""
    settings = OperatorSettings.from_env()
    source = "ENERGAIZER_PROFILE"
    if profile is not None:
        settings, source = settings.model_copy(update={"profile": profile}), "--profile"
    from energaizer_operator.profile_watch import validated_copy

    # a profile that does not load stops the operator here, in one line; reloads go to a validated copy
    settings, profile_watcher = validated_copy(settings, source)
    try:
        kube.load_config()
    except kube.NoClusterConfigError as exc:
        raise InvalidInputError("KUBECONFIG", str(exc)) from None
    watched = [] if all_namespaces else list(namespaces or settings.namespaces)
    level = getattr(logging, settings.log_level)
    kopf.configure(
        debug=level <= logging.DEBUG, verbose=level <= logging.INFO, quiet=level >= logging.WARNING
    )
    logging.getLogger().setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if level > logging.DEBUG:  # kopf logs every handled watch event ("Handler ... succeeded") at INFO
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)

    import energaizer_operator.gate  # Kueue admission gate (Jobs energaizer did not create)
    import energaizer_operator.handlers  # registers the handlers
    import energaizer_operator.measured_handlers  # measured energy (contract section 5)
    import energaizer_operator.profile_watch  # noqa: F401  (the calibration profile, reloaded on change)
    from energaizer_operator.leader import default_identity
    from energaizer_operator.state import OperatorState

    kopf.run(
        standalone=True,  # no kopf peering: replicas elect a leader with a Lease (leader.py)
        # kopf's own default identity calls getpass.getuser(), which raises for a UID without a
        # passwd entry: the image's 65532, or any UID a cluster assigns (OpenShift)
        identity=default_identity(),
        clusterwide=not watched,
        namespaces=watched,
        # the namespaces kopf watches are those the operator lists (relist.py)
        memo=kopf.Memo(
            state=OperatorState(settings.model_copy(update={"namespaces": watched})),
            profile_watcher=profile_watcher,
        ),
    )
