"""``energaizer gpus`` and ``energaizer models``: the catalogs."""

from __future__ import annotations

from typing import Annotated

import typer

from energaizer.cli.common import (
    CatalogOpt,
    JsonOpt,
    WideOpt,
    id_column,
    load_catalogs,
    print_json,
    print_tables,
)

NamesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="only the entries these names resolve to (ids, aliases, Hugging Face ids; an unknown name is an error)",
        show_default=False,
    ),
]


def _entries(found: list) -> list:  # type: ignore[type-arg]
    """The entries the names resolve to, each once, in the order first named (``h100 h100-sxm``: one)."""
    first: dict[str, object] = {}
    for entry in found:
        first.setdefault(entry.id, entry)
    return list(first.values())


def register(app: typer.Typer) -> None:
    @app.command()
    def gpus(
        names: NamesArg = None, json_out: JsonOpt = False, wide: WideOpt = False, catalog: CatalogOpt = None
    ) -> None:
        """List the GPU catalog (datasheet figures; --wide for more columns, sources in --json)."""
        from energaizer.catalog import get_gpu, list_gpus

        load_catalogs(catalog)
        items = _entries([get_gpu(n) for n in names]) if names else list_gpus()
        if json_out:
            print_json([g.model_dump(mode="json") for g in items])
            return
        from rich.markup import escape  # an extra catalog's ids and names are text, not rich markup
        from rich.table import Table  # the table only: --json does without rich

        table = Table(title=f"{len(items)} GPU types")
        id_column(table, "id", [escape(g.id) for g in items])
        cols = ["memory GB", "BW GB/s", "bf16 TF", "fp8 TF", "TDP W"]
        if wide:
            cols += ["idle W", "SMs", "max MHz", "name", "aliases"]
        for col in cols:
            table.add_column(col, overflow="fold", justify="left" if col in ("name", "aliases") else "right")
        for g in items:
            pk = g.peak_tflops
            cells = [
                g.id,
                f"{g.memory_gb:g}",
                f"{g.memory_bw_gbs:g}",
                f"{pk.get('bf16', pk.get('fp16', 0)):g}",
                f"{pk['fp8']:g}" if "fp8" in pk else "-",
                f"{g.tdp_w:g}",
            ]
            if wide:
                cells += [
                    f"{g.idle_power_w:g}",
                    str(g.sm_count),
                    f"{g.max_clock_mhz:.0f}",
                    g.name,
                    ", ".join(g.aliases[:4]),
                ]
            table.add_row(*(escape(c) for c in cells))
        print_tables(table)

    @app.command()
    def models(
        names: NamesArg = None, json_out: JsonOpt = False, wide: WideOpt = False, catalog: CatalogOpt = None
    ) -> None:
        """List the model catalog (architectures; --wide for more columns). With names: the entries they
        resolve to (a checkpoint name such as Qwen/Qwen3-30B-A3B-Thinking-2507-FP8 shows its base entry)."""
        from energaizer.catalog import get_model, list_models

        load_catalogs(catalog)
        items = _entries([get_model(n) for n in names]) if names else list_models()
        if json_out:
            print_json([m.model_dump(mode="json") for m in items])
            return
        from rich.markup import escape
        from rich.table import Table  # the table only: --json does without rich

        table = Table(title=f"{len(items)} models")
        id_column(table, "id", [escape(m.id) for m in items])
        cols = ["type", "params B", "layers", "hidden", "MoE"]
        if wide:
            cols += ["heads/kv", "ffn", "hf id"]
        for col in cols:
            table.add_column(col, overflow="fold", justify="left" if col in ("type", "hf id") else "right")
        for m in items:
            cells = [
                m.id,
                m.arch_type,
                f"{m.params_b:g}" if m.params_b else "-",
                str(m.layers or "-"),
                str(m.hidden or "-"),
                f"{m.moe_active_experts}/{m.moe_experts}" if m.is_moe else "-",
            ]
            if wide:
                cells += [
                    f"{m.heads}/{m.kv_heads_}" if m.heads else "-",
                    str(m.ffn or m.moe_expert_ffn or "-"),
                    m.hf_id or "-",
                ]
            table.add_row(*(escape(c) for c in cells))
        print_tables(table)
