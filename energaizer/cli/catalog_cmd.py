"""``energaizer gpus`` and ``energaizer models``: the catalogs."""

from __future__ import annotations

import typer

from energaizer.cli.common import CatalogOpt, JsonOpt, load_catalogs, print_json


def register(app: typer.Typer) -> None:
    @app.command()
    def gpus(json_out: JsonOpt = False, catalog: CatalogOpt = None) -> None:
        """List the GPU catalog (datasheet figures; sources in --json)."""
        from energaizer.catalog import list_gpus

        load_catalogs(catalog)
        items = list_gpus()
        if json_out:
            print_json([g.model_dump(mode="json") for g in items])
            return
        from rich.console import Console  # the table only: --json does without rich
        from rich.table import Table

        table = Table(title=f"{len(items)} GPU types")
        for col in (
            "id",
            "name",
            "SMs",
            "max MHz",
            "memory GB",
            "BW GB/s",
            "bf16 TF",
            "fp8 TF",
            "TDP W",
            "idle W",
            "aliases",
        ):
            table.add_column(col)
        for g in items:
            pk = g.peak_tflops
            table.add_row(
                g.id,
                g.name,
                str(g.sm_count),
                f"{g.max_clock_mhz:.0f}",
                f"{g.memory_gb:g}",
                f"{g.memory_bw_gbs:g}",
                f"{pk.get('bf16', pk.get('fp16', 0)):g}",
                f"{pk['fp8']:g}" if "fp8" in pk else "-",
                f"{g.tdp_w:g}",
                f"{g.idle_power_w:g}",
                ", ".join(g.aliases[:4]),
            )
        Console().print(table)

    @app.command()
    def models(json_out: JsonOpt = False, catalog: CatalogOpt = None) -> None:
        """List the model catalog (architectures)."""
        from energaizer.catalog import list_models

        load_catalogs(catalog)
        items = list_models()
        if json_out:
            print_json([m.model_dump(mode="json") for m in items])
            return
        from rich.console import Console  # the table only: --json does without rich
        from rich.table import Table

        table = Table(title=f"{len(items)} models")
        for col in ("id", "hf id", "type", "params B", "layers", "hidden", "heads/kv", "ffn", "MoE"):
            table.add_column(col)
        for m in items:
            moe = f"{m.moe_active_experts}/{m.moe_experts}" if m.is_moe else "-"
            table.add_row(
                m.id,
                m.hf_id or "-",
                m.arch_type,
                f"{m.params_b:g}" if m.params_b else "-",
                str(m.layers or "-"),
                str(m.hidden or "-"),
                f"{m.heads}/{m.kv_heads_}" if m.heads else "-",
                str(m.ffn or m.moe_expert_ffn or "-"),
                moe,
            )
        Console().print(table)
