"""``energaizer operator``: run the Kubernetes operator (needs the ``operator`` extra)."""

from __future__ import annotations

import re
from pathlib import Path

import typer

# a namespace name is a DNS-1123 label
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def register(app: typer.Typer) -> None:
    @app.command("operator")
    def operator(
        namespace: list[str] = typer.Option(
            None, "--namespace", "-n", help="namespace to watch (repeatable); default ENERGAIZER_NAMESPACES"
        ),
        all_namespaces: bool = typer.Option(False, "--all-namespaces", "-A", help="watch every namespace"),
        profile: Path | None = typer.Option(
            None,
            "--profile",
            help="calibration profile JSON from `energaizer calibrate`, reloaded on change (default: "
            "ENERGAIZER_PROFILE, else the shipped one)",
            show_default=False,
        ),
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

        # run() checks the ENERGAIZER_* settings and the cluster credentials before kopf starts:
        # a bad value or no usable login is one line naming it (ENERGAIZER_..., KUBECONFIG)
        run = operator_module("main", "operator").run
        run(
            list(namespace or []),
            all_namespaces=all_namespaces,
            profile=str(profile) if profile is not None else None,
        )
