"""``energaizer extender``: serve kube-scheduler's extender API (needs the ``operator`` extra)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("extender")
    def extender(
        port: int = typer.Option(8888, "--port", min=1, max=65535, help="TCP port to listen on"),
        host: str | None = typer.Option(
            None,
            "--host",
            help="address to listen on (default: every IPv6 and IPv4 address; IPv4 alone without IPv6)",
            show_default=False,
        ),
        node_cache: bool = typer.Option(
            True,
            "--node-cache/--no-node-cache",
            help="watch the API's Nodes to answer NodeNames requests (nodeCacheCapable: true)",
        ),
        profile: Path | None = typer.Option(
            None,
            "--profile",
            help="calibration profile JSON from `energaizer calibrate` (default: ENERGAIZER_PROFILE, else the shipped one)",
            show_default=False,
        ),
    ) -> None:
        """Serve POST /scheduler/prioritize and /scheduler/filter (energy per GPU type) and GET /healthz."""
        from energaizer.cli.common import operator_module
        from energaizer.errors import InvalidInputError

        run = operator_module("extender.server", "extender").run
        try:
            run(host, port, node_cache=node_cache, profile=str(profile) if profile is not None else None)
        except OSError as exc:  # the port is taken, or the address is unknown or not this host's
            import errno
            import socket

            bad_host = host is not None and (
                isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL
            )
            where = f"port {port}" if host is None else f"{host} port {port}"
            raise InvalidInputError(
                "--host" if bad_host else "--port", f"cannot listen on {where}: {exc.strerror or exc}"
            ) from None
