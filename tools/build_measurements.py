"""Build the shipped measurement CSVs (contract section 3 format) from ``../shared/data``.

Run ``python tools/build_measurements.py SHARED_DATA_DIR`` to regenerate
``energaizer/data/measurements/*.csv``. Each output row is one workload with its measured
whole-workload GPU energy, duration and average power (all GPUs), plus ``source``/``source_ref``
provenance columns. Assumptions that the sources do not record are listed in ``ASSUMPTIONS`` and
written to the README beside the CSVs.
"""

from __future__ import annotations

import csv
import math
import re
import sys
from pathlib import Path
from typing import get_args

from energaizer.catalog import get_model
from energaizer.catalog.schema import Precision
from energaizer.errors import UnknownNameError
from energaizer.io.workload_csv import MEASUREMENT_FILE_COLUMNS as COLUMNS
from energaizer.workload import PRECISION_SYNONYMS

OUT_DIR = Path(__file__).resolve().parent.parent / "energaizer" / "data" / "measurements"
HOLDOUT_DIR = OUT_DIR.parent / "holdout"
# GPUs whose rows are never fitted: an unseen-GPU test of the shipped profile (A40: GA102, GDDR6).
HOLDOUT_GPUS = frozenset({"a40"})
# Model families whose rows are never fitted either: an unseen-family test (Nemotron-H: Mamba-2 layers,
# a block type no fitted row has).
HOLDOUT_FAMILIES = frozenset({"nemotron-h"})
ASSUMPTIONS = {
    "mlenergy-v2 input_tokens": "chat (ShareGPT): 120 tokens (mean prompt 350 characters + chat template); "
    "code (HumanEval+): 150 tokens. The source does not publish token counts.",
    "mlenergy-v3 input_tokens": "lm-arena-chat 256, gpqa 300 tokens (not published).",
    "mlenergy-v1 input_tokens": "150 tokens (ShareGPT prompt + FastChat system prompt).",
    "catalog models": "rows are kept when the catalog knows the model, also where the source's own "
    "architecture columns are empty (e.g. the GPT-NeoX and BLOOM fine-tunes of ML.ENERGY v1).",
    "serving requests": "steady state is modelled as 8 x batch requests at the concurrency the source reports "
    "(avg_batch_size where it is below max_num_seqs, else max_num_seqs); energy and duration are per-request "
    "figures times that count.",
    "mlenergy-v3 parallelism": "gpu_count = the run's GPUs; tensor_parallel, expert_parallel and data_parallel "
    "as the leaderboard writes them (ml-energy/data records/runs.py: expert_parallel = the GPUs when the vLLM "
    "config enables expert parallelism, tensor_parallel then 1, although ml-energy/benchmark launches vLLM "
    "with --tensor-parallel-size = the GPUs unless the config sets data-parallel-size: EP = TP x DP).",
    "mlenergy-v2 execution": "legacy-engine: vLLM 0.5.4 spends ~0.3 ms of host time per running sequence per "
    "decode step, 10x a current engine (mlenergy-v3, vLLM 0.11.1, same GPUs and models).",
    "attention and execution": "written out for every row, because the defaults (auto) model today's "
    "production stacks (fused attention everywhere, CUDA-graph serving engines for inference) and several "
    "sources ran eager code: the artifact's HF/timm forward passes (attention eager, execution eager), "
    "ML.ENERGY v1's HF generate() of 2023 and Zeus's HF BERT training on PyTorch 1.10 (attention and "
    "execution eager: HF Transformers ran matmul + softmax attention before SDPA, Transformers 4.36), "
    "ML.ENERGY v2's vLLM 0.5.4 (flash, legacy-engine) and v3's vLLM 0.11.1 (flash, graphs).",
    "artifact power limit": "A100-PCIe 250 W, A10 150 W (the cards' defaults); the locked clock is the "
    "requested clock, so throttled DVFS rows test the power-cap solve.",
    "zeus": "V100 and A40 rows (P100 and RTX 6000 are not in the catalog); fp32 training, which PyTorch "
    "before 1.12 (the paper's stack) ran on TF32 tensor cores on the Ampere A40, so its rows say tf32; "
    "A40 ImageNet rows are left out: ResNet-50 trains at ~350 images/s on both the V100 and the A40 (whose "
    "TF32 rate is ~5x the V100's FP32), so the input pipeline, not the GPU, sets their pace; "
    "epoch sizes: ImageNet "
    "1,281,167 images; SQuAD 88,641 examples at 384 tokens; Sentiment140 1,600,000 tweets at 64 tokens (tweets of 2009, at most 140 characters; Zeus's BERT script, "
    "examples/capriccio/train.py, pads each batch to its longest tweet and truncates at 128 tokens: the padded "
    "length is not recorded and is shorter for small batches).",
}
GPU_MAP = {
    "A100-SXM4-40GB": "a100-sxm4-40gb",
    "H100-SXM-80GB": "h100-sxm",
    "H100": "h100-sxm",
    "A100": "a100-sxm4-40gb",
    "V100": "v100-sxm2-32gb",
    "A40": "a40",
    "a100-pcie-40gb": "a100-pcie-40gb",
    "a10": "a10",
}
ARTIFACT_LIMIT_W = {"a100-pcie-40gb": 250.0, "a10": 150.0}
ZEUS_EPOCH = {
    "imagenet": (1_281_167, None, "resnet-50"),
    "squad": (88_641, 384, "bert-base"),
    "sentiment140": (1_600_000, 64, "bert-base"),
}


def _precision(cell: str) -> str:
    """The source's precision (bfloat16, fp8, mxfp4, ...) in the model's names, through the synonyms the
    workload CSV reader also accepts; bf16 where the source names none (ML.ENERGY v2: "auto ...")."""
    word = cell.split()[0].lower() if cell.split() else ""
    name = PRECISION_SYNONYMS.get(word, word)
    return name if name in get_args(Precision) else "bf16"


def _f(x: str) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def artifact(shared: Path) -> list[dict]:
    out = []
    for r in _read(shared / "energaizer-artifact" / "workloads.csv"):
        if r["qc_flags"] == "short_window_implausible" or r["gpu"] not in ARTIFACT_LIMIT_W:
            continue
        seq = r["sequence_length"]
        out.append(
            {
                "source": f"energaizer-artifact-{r['measurement_set']}",
                "source_ref": f"{r['source_file']}#row{r['source_row']}",
                "model": r["model"],
                "gpu": r["gpu"],
                "gpu_count": 1,
                "precision": r["precision"],
                "task": "inference",
                "requests": r["batch_size"],
                "input_tokens": seq or 1,
                "output_tokens": 0,
                "batch_size": r["batch_size"],
                "frequency_mhz": r["sm_clock_mhz"],
                "power_limit_w": ARTIFACT_LIMIT_W[r["gpu"]],
                "attention": "eager",  # HF Transformers / timm forward passes in plain PyTorch
                "execution": "eager",
                "measured_energy_joules": r["measured_energy_j"],
                "measured_duration_seconds": r["measured_time_s"],
                "measured_average_power_watts": r["measured_avg_power_w"],
            }
        )
    return out


def _in_catalog(model_id: str) -> bool:
    """Rows are kept when the catalog knows the model's architecture (the source's own architecture
    columns are empty for some models the catalog has)."""
    try:
        get_model(model_id)
    except UnknownNameError:
        return False
    return True


def _serving_config(task: str, r: dict[str, str]) -> str:
    """An ML.ENERGY configuration, the same on every GPU type: task, model and max_num_seqs (the rows' output
    lengths and sustained concurrency are per-run averages)."""
    return f"{task}|{r['model_id']}|max_num_seqs={int(float(r['batch_size']))}"


def _serving(r: dict[str, str], source: str, inp: int, gpu_count: int) -> dict | None:
    out_tok = _f(r["output_tokens"])
    e_req = _f(r["measured_energy_j"])
    power = _f(r["measured_avg_power_w"])
    batch = int(float(r["batch_size"]))
    # the concurrency the engine actually sustained (below max_num_seqs when KV-cache bound)
    avg = _f(r.get("avg_batch_size", ""))
    if avg and avg < batch:
        batch = max(1, round(avg))
    if not (out_tok and e_req and power) or not _in_catalog(r["model_id"]):
        return None
    requests = 8 * batch
    energy = e_req * requests
    return {
        "source": source,
        "source_ref": r["source_ref"],
        "model": r["model_id"],
        "gpu": GPU_MAP[r["gpu"]],
        "gpu_count": gpu_count,
        "precision": _precision(r["precision"]),
        "task": "inference",
        "requests": requests,
        "input_tokens": inp,
        "output_tokens": max(1, round(out_tok)),
        "batch_size": batch,
        "attention": "flash",  # vLLM's FlashAttention / FlashInfer kernels
        "execution": "graphs",
        "measured_energy_joules": energy,
        "measured_duration_seconds": energy / power,
        "measured_average_power_watts": power,
    }


def mlenergy_v2(shared: Path) -> list[dict]:
    out = []
    for r in _read(shared / "measured" / "mlenergy_v2_inference.csv"):
        if r["pipeline_parallel"] != "1" or r["task"].startswith("visual"):
            continue
        inp = 150 if r["task"].startswith("code") else 120
        row = _serving(r, "mlenergy-v2", inp, int(r["tensor_parallel"]))
        if row:
            row["config"] = _serving_config(re.search(r"llm_text_generation/([^/]+)/", r["source_ref"])[1], r)
            row["execution"] = "legacy-engine"  # vLLM 0.5.4 (the source's documented method)
            out.append(row)
    return out


def mlenergy_v3(shared: Path) -> list[dict]:
    out = []
    for r in _read(shared / "measured" / "mlenergy_v3_inference.csv"):
        if r["modality"] != "text":
            continue
        row = _serving(r, "mlenergy-v3", 300 if r["task"] == "gpqa" else 256, int(r["gpu_count"]))
        if row:
            row["config"] = _serving_config(r["task"], r)
            # the leaderboard's columns (ml-energy/data mlenergy_data/records/runs.py: EP = the GPUs when
            # enable-expert-parallel is set, tensor_parallel then 1; vLLM itself ran TP x DP = EP)
            ep, dp = int(r["expert_parallel"]), int(r["data_parallel"])
            row.update(tensor_parallel=r["tensor_parallel"], expert_parallel=ep, data_parallel=dp)
            out.append(row)
    return out


def mlenergy_v1(shared: Path) -> list[dict]:
    out = []
    for r in _read(shared / "measured" / "mlenergy_v1_legacy_inference.csv"):
        if r["gpu"] not in GPU_MAP or not _in_catalog(r["model_id"]):
            continue
        out_tok, energy, t = _f(r["output_tokens"]), _f(r["measured_energy_j"]), _f(r["measured_time_s"])
        if not (out_tok and energy and t):
            continue
        out.append(
            {
                "source": "mlenergy-v1",
                "source_ref": r["source_ref"],
                # the prompt set (chat, chat-concise, instruct, instruct-concise: one file per GPU) and model
                "config": f"{re.search(r'/[^/_]+_([^/]+)_benchmark', r['source_ref'])[1]}|{r['model_id']}",
                "model": r["model_id"],
                "gpu": GPU_MAP[r["gpu"]],
                "gpu_count": 1,
                "precision": "fp16",
                "task": "inference",
                "requests": 1,
                "input_tokens": 150,
                "output_tokens": max(1, round(out_tok)),
                "batch_size": 1,
                # HF Transformers 4.2x-4.3x (2023): matmul + softmax attention (SDPA came with 4.36)
                "attention": "eager",
                "execution": "eager",  # HF generate(): one framework dispatch per kernel
                "measured_energy_joules": energy,
                "measured_duration_seconds": t,
                "measured_average_power_watts": energy / t,
            }
        )
    return out


# Zeus GPU -> (catalog id, precision its fp32 PyTorch < 1.12 training ran at, input-bound data sets left
# out, see ASSUMPTIONS["zeus"])
ZEUS_GPUS = {"V100": ("v100-sxm2-32gb", "fp32", ()), "A40": ("a40", "tf32", ("imagenet",))}


def zeus(shared: Path, gpu: str = "V100") -> list[dict]:
    gpu_id, precision, input_bound = ZEUS_GPUS[gpu]
    out = []
    for r in _read(shared / "measured" / "zeus_nsdi23_training_power.csv"):
        if r["gpu"] != gpu or r["dataset"] not in ZEUS_EPOCH or r["dataset"] in input_bound:
            continue
        samples, seq, model = ZEUS_EPOCH[r["dataset"]]
        batch = int(float(r["batch_size"]))
        energy, t = _f(r["measured_energy_j"]), _f(r["measured_time_s"])
        if not (energy and t):
            continue
        out.append(
            {
                "source": "zeus-nsdi23",
                "source_ref": r["source_ref"],
                "model": model,
                "gpu": gpu_id,
                "gpu_count": 1,
                "precision": precision,
                "task": "training",
                "steps": math.ceil(samples / batch),
                "global_batch_size": batch,
                "sequence_length": seq or "",
                "power_limit_w": r["power_limit_w"],
                # PyTorch 1.10 and HF BERT: matmul + softmax attention (no SDPA before PyTorch 2.0)
                "attention": "eager" if seq else "",
                "execution": "eager",  # PyTorch training loop
                "measured_energy_joules": energy,
                "measured_duration_seconds": t,
                "measured_average_power_watts": _f(r["measured_avg_power_w"]),
            }
        )
    return out


BUILDERS = {
    "artifact": artifact,
    "mlenergy_v1": mlenergy_v1,
    "mlenergy_v2": mlenergy_v2,
    "mlenergy_v3": mlenergy_v3,
    "zeus_v100": zeus,
    "zeus_a40": lambda shared: zeus(shared, "A40"),
}


def _held_out(row: dict) -> bool:
    """A row of a held-out GPU or model family (never fitted)."""
    return row["gpu"] in HOLDOUT_GPUS or get_model(row["model"]).family in HOLDOUT_FAMILIES


def build(shared: Path, out_dir: Path = OUT_DIR, holdout_dir: Path = HOLDOUT_DIR) -> dict[str, int]:
    """Write the calibration CSVs to ``out_dir`` and the rows of the held-out GPUs and model families
    (never fitted, the unseen-GPU and unseen-family checks of docs/accuracy.md) to ``holdout_dir``;
    returns the row count per file."""
    counts = {}
    for name, fn in BUILDERS.items():
        rows = fn(shared)
        held = [_held_out(r) for r in rows]
        for folder, part in (
            (out_dir, [r for r, h in zip(rows, held, strict=True) if not h]),
            (holdout_dir, [r for r, h in zip(rows, held, strict=True) if h]),
        ):
            if not part:
                continue
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="raise")
                w.writeheader()
                for row in part:
                    w.writerow({k: row.get(k, "") for k in COLUMNS})
            counts[f"{folder.name}/{name}"] = len(part)
    return counts


if __name__ == "__main__":  # pragma: no cover
    root = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
    print(build(root))
