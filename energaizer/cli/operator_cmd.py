"""``energaizer operator``: run the Kubernetes operator (needs the ``operator`` extra)."""

from __future__ import annotations

import typer


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
        from energaizer.cli.common import operator_module

        run = operator_module("main", "operator").run
        run(list(namespace or []), all_namespaces=all_namespaces)
