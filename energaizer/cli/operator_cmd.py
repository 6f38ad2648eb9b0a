"""``energaizer operator``: run the Kubernetes operator (needs the ``operator`` extra)."""

from __future__ import annotations

import re

import typer

# a namespace name is a DNS-1123 label
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def check_cluster_credentials() -> None:
    """Fail with one line before starting when there is no usable cluster login (what kopf's default login
    finds: the in-cluster service account, else the kubeconfig)."""
    import os

    import kubernetes
    import yaml

    from energaizer.errors import InvalidInputError

    try:
        kubernetes.config.load_incluster_config()
        return
    except kubernetes.config.ConfigException:
        pass
    where = os.environ.get("KUBECONFIG") or "~/.kube/config"
    try:
        kubernetes.config.load_kube_config()
    except (kubernetes.config.ConfigException, OSError, yaml.YAMLError, TypeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise InvalidInputError(
            "KUBECONFIG",
            f"no usable cluster credentials in {where} and not running in a pod ({reason})",
        ) from None


def register(app: typer.Typer) -> None:
    @app.command("operator")
    def operator(
        namespace: list[str] = typer.Option(
            None, "--namespace", "-n", help="namespace to watch (repeatable); default ENERGAIZER_NAMESPACES"
        ),
        all_namespaces: bool = typer.Option(False, "--all-namespaces", "-A", help="watch every namespace"),
    ) -> None:
        """Run the operator against the current kubeconfig (or in-cluster config); ENERGAIZER_* settings."""
        from energaizer.errors import InvalidInputError

        if namespace and all_namespaces:
            raise InvalidInputError("--namespace", "cannot be combined with --all-namespaces")
        for ns in namespace or []:
            if not _NAMESPACE.match(ns):
                raise InvalidInputError(
                    "--namespace", f"{ns!r} is not a namespace name (lowercase letters, digits and '-')"
                )
        from energaizer.cli.common import operator_module

        run = operator_module("main", "operator").run
        OperatorSettings = operator_module("settings", "operator").OperatorSettings
        OperatorSettings.from_env()  # a bad ENERGAIZER_* value: one line naming the variable
        check_cluster_credentials()
        run(list(namespace or []), all_namespaces=all_namespaces)
