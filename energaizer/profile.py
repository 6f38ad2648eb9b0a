"""Calibration profile: the few correction terms fitted to measurements, with physical meaning.

Time corrections (EnergAIzer's lambda terms): a fixed host cost per kernel launch (eager dispatch), a fixed
device latency per launch, a cost per tile wave (prologue/epilogue of each wave of tiles), a host gap per
forward pass, a serving engine's
host time per decode step and per running sequence, and the
achievable fraction of peak compute, attention and bandwidth (and how far below f_max memory-bound
kernels keep that bandwidth), and the rate at which tensor-core tiles stage their operands. Power:
dynamic power of each module at full utilisation and maximum clock, as a fraction of the GPU's dynamic range (TDP - idle) or,
for CUDA-core math and DRAM, as energy per FLOP and per bit; the generic voltage/frequency curve used
where no table is measured.
Parameters are shared by all GPUs so that an unseen GPU still gets a sound estimate.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from energaizer.errors import InvalidInputError, pydantic_message


class CalibrationProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "default"
    description: str = ""
    # --- time ---
    launch_overhead_us: float = Field(
        default=8.0,
        ge=0,
        le=1000,
        description="host dispatch cost per kernel under eager execution; the GPU idles when kernels are "
        "shorter than their dispatch (a pass takes max(GPU time, launches x this))",
    )
    dispatch_overlap_loss: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="share of the shorter of host dispatch and GPU time that does not overlap under eager "
        "execution (0: the host always runs ahead; 1: serialised, as in code that syncs every layer)",
    )
    wave_overhead_cycles: float = Field(default=1200.0, ge=0, le=1e6, description="per wave of tiles")
    kernel_latency_us: float = Field(
        default=1.3,
        ge=0,
        le=1000,
        description="fixed device time of every kernel launch beside its waves and its work (grid start, "
        "the first loads' DRAM latency, the last stores draining; H100 CUDA-graph replays: a tiny kernel "
        "~1.1 us per launch, a large copy ~1.8 us plus its bytes); hidden under eager dispatch when the "
        "host is slower than the GPU",
    )
    pass_overhead_ms: float = Field(
        default=0.3, ge=0, le=1e4, description="host gap per forward pass under eager execution (sync, loop)"
    )
    decode_step_overhead_ms: float = Field(
        default=2.0,
        ge=0,
        le=1e4,
        description="serving-engine host time per decode step (scheduling, input preparation)",
    )
    decode_seq_overhead_us: float = Field(
        default=20.0,
        ge=0,
        le=1e5,
        description="serving-engine host time per running sequence per decode step (sampling, bookkeeping)",
    )
    engine_overlap_loss: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="share of the shorter of a serving engine's host time per decode step and the GPU's "
        "step time that does not overlap (current engines schedule the next step during this one)",
    )
    legacy_decode_seq_overhead_us: float = Field(
        default=300.0,
        ge=0,
        le=1e5,
        description="the same for execution legacy-engine (per-sequence Python scheduling, e.g. vLLM 0.5)",
    )
    legacy_decode_step_overhead_ms: float = Field(
        default=5.0,
        ge=0,
        le=1e4,
        description="execution legacy-engine: host time per engine step whatever its batch (vLLM 0.5's Python "
        "scheduler, input preparation and output processing, not overlapped with the GPU), in place of "
        "decode_step_overhead_ms",
    )
    legacy_worker_overhead_ms: float = Field(
        default=5.0,
        ge=0,
        le=1e4,
        description="execution legacy-engine: host time per decode step per extra tensor-parallel worker "
        "(the step is handed to each worker process in turn)",
    )
    compute_efficiency: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="of tensor-core peak in a tile's math (its operand staging aside)",
    )
    operand_feed_bytes_per_cycle: float = Field(
        default=48.0,
        gt=0,
        le=1024,
        description="operand bytes per SM per clock that a tensor-core GEMM tile stages (shared-memory fills "
        "and fragment loads) beside its MMAs; the staging is not hidden, so a tile takes its math time plus its "
        "operand bytes at this rate, and GPUs with more tensor FLOP per SM per clock reach less of their peak",
    )
    simt_efficiency: float = Field(
        default=0.85, gt=0, le=1, description="of CUDA-core FP32 peak in a GEMM tile"
    )
    simt_issue_share: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="FFMA share of the issue slots in a SIMT (CUDA-core fp32) GEMM on SMs with 128 FP32 "
        "lanes (GA10x, Ada, Hopper), where every other instruction displaces an FFMA (H100 sgemm measured "
        "0.78 of the 128-lane peak)",
    )
    attention_efficiency: float = Field(default=0.5, gt=0, le=1, description="fused attention vs GEMM peak")
    quantized_expert_efficiency: float = Field(
        default=0.57,
        gt=0,
        le=1,
        description="MoE expert GEMMs with 8-bit or narrower weights and math (block-scaled W8A8) reach this share "
        "of the bf16 kernels' bandwidth and math rate (scale-factor handling in grouped low-precision kernels; "
        "weight-only ones stream at the bf16 rate beside their dequantisation). Not fitted: the public "
        "Triton fused-MoE timings' 0.55-0.60 (vLLM PR 35457, H200: fp8 W8A8 10-17 % faster than bf16 with half "
        "the weight bytes); the only whole-workload rows (ML.ENERGY v3 on the H100) hardly identify it",
    )
    dram_efficiency: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="achievable fraction of DRAM bandwidth of an eager framework kernel's stream beside its "
        "fixed latency where enough bytes are in flight (H100 bf16 adds of 0.2-3 GB: 0.92, 512 MiB copies on "
        "the H100 and H200: 0.90 and 0.88); not fitted: the workloads' eager streams are bound by their bytes "
        "in flight (in_flight_bytes_per_l1_kb) below it",
    )
    fused_dram_efficiency: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="share of the DRAM peak the fused kernels of a serving engine or library (fused "
        "attention, vLLM's norms, rotary, activations and sampler: asynchronous loads, not bound by eager "
        "kernels' bytes in flight) stream at down to the knee of dram_stream_headroom. Not fitted: in a serving "
        "step their bytes are the paged KV cache's, and public paged decode-attention kernels stream at "
        "0.47-0.55 of the H100's peak at 256-4000 tokens of context (FlashAttention-2 paged, onnxruntime PR "
        "21414; FlashAttention-3 paged, flash-attention issue 1572); ML.ENERGY v3 alone fits 0.50",
    )
    gemm_dram_efficiency: float = Field(
        default=0.82,
        gt=0,
        le=1,
        description="share of the DRAM peak a GEMM streams its operands at (cuBLAS skinny GEMMs on the H100: "
        "0.77-0.84), not fitted",
    )
    dram_stream_headroom: float = Field(
        default=1.5,
        gt=0,
        le=100,
        description="bytes a GEMM's or fused kernel's asynchronous loads keep in flight at the maximum clock, "
        "relative to what the GPU's raw DRAM bandwidth needs; their latency runs in core cycles, so below "
        "f_max x its DRAM share / this such a kernel slows with the SM clock",
    )
    in_flight_bytes_per_l1_kb: float = Field(
        default=42.7,
        gt=0,
        le=1e4,
        description="bytes an eager framework kernel (PyTorch's elementwise, norm and softmax kernels) keeps "
        "in flight per SM, per KB of the SM's L1 + shared memory (the buffer its loads land in; default: 8 KB "
        "on an A100's 192 KB); by Little's law such a kernel draws at most SMs x the bytes in flight / "
        "(400 ns + core_latency_cycles / SM clock)",
    )
    core_latency_cycles: float = Field(
        default=350.0,
        ge=0,
        le=1e5,
        description="part of a streaming load's round trip that runs in SM clock cycles (L1, crossbar, "
        "L2), beside 400 ns on the DRAM side",
    )
    link_efficiency: float = Field(default=0.7, gt=0, le=1, description="achievable fraction of link BW")
    comm_latency_us: float = Field(default=15.0, ge=0, le=1e5, description="per collective")
    # --- power ---
    alpha_tensor: float = Field(default=1.2, ge=0, le=10, description="tensor-core power at full use")
    async_mma_energy_ratio: float = Field(
        default=0.9,
        gt=0,
        le=2,
        description="tensor-core energy per FLOP of asynchronous MMAs fed from shared memory by bulk "
        "copies (Hopper wgmma + TMA, Blackwell tcgen05) relative to register-fed MMAs (Volta-Ada mma.sync); "
        "set from the H100/H200 bf16 GEMMs at the 700 W cap (0.9: 8192^3 and 4096x4096x128256 within "
        "+1..+8 % time at the measured clock; benchmarks/kernel_validation.py), not fitted",
    )
    fp32_pj_per_flop: float = Field(
        default=10.0,
        ge=0,
        le=1000,
        description="energy per FP32 FLOP on the CUDA cores (operand fetch, issue and FMA) at the voltage "
        "of the maximum clock (pJ); scales with V^2, so SIMT power follows the lanes a GPU has, not its TDP",
    )
    alpha_l2: float = Field(default=0.2, ge=0, le=10, description="L2 power at full use")
    alpha_sm: float = Field(default=0.35, ge=0, le=10, description="SM activity (issue, clocks) while busy")
    async_stall_activity: float = Field(
        default=0.55,
        gt=0,
        le=1,
        description="share of the SM-activity power an SM draws in a GEMM of a GPU with bulk-copy units "
        "(Hopper, Blackwell: TMA) while the tiles it waits for are in flight, rising to 1 with the share of "
        "the kernel's time its math takes: the copies are issued by one thread per tile and the other warps "
        "sleep at their barriers. Kernels whose every thread issues its own loads (elementwise passes, fused "
        "norms, attention gathering 16-token KV pages) stay fully active. Set from the H100 GEMMs at M = 16-64, "
        "which stream their weights (our NVML sweep's 16x4096x57344: +13 % power at 1, 0 % at 0.55; the "
        "shared file's 64x4096x14336: +9 % -> +2 %, at the measured 1980 MHz), not fitted",
    )
    dram_pj_per_bit: float = Field(
        default=7.0,
        ge=0,
        le=100,
        description="board-level energy per bit of an HBM2 access (DRAM, interface, the GPU's PHY and "
        "controller), pJ; other memory technologies scale it by their published ratio "
        "(energaizer/catalog/memory.py), so one shared scale covers every GPU",
    )
    gap_activity: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="share of the SM-activity power drawn while the GPU waits for the host (clocks up, "
        "small kernels in flight)",
    )
    # --- DVFS fallbacks where a GPU has no measured table ---
    voltage_min_ratio: float = Field(default=0.78, gt=0, le=1, description="V at/below the knee / V at f_max")
    voltage_knee_ratio: float = Field(default=0.75, gt=0, le=1, description="knee clock / f_max")
    idle_at_max_clock_ratio: float = Field(
        default=1.5,
        ge=1,
        le=5,
        description="idle(f_max) / idle(parked) for GPUs without a measured idle table: the mean of the "
        "measured ones (A100-PCIe 1.51, A100-SXM4 1.37, H100 1.65)",
    )
    # --- provenance ---
    fitted_on: dict[str, int] = Field(default_factory=dict, description="source -> rows used in the fit")
    # null: a metric the rows could not give (time and power MAPE of rows without measured durations)
    fit_metrics: dict[str, float | None] = Field(default_factory=dict)


FITTED_PARAMETERS: tuple[str, ...] = (
    "launch_overhead_us",
    "dispatch_overlap_loss",
    "wave_overhead_cycles",
    "kernel_latency_us",
    "pass_overhead_ms",
    "decode_step_overhead_ms",
    "decode_seq_overhead_us",
    "engine_overlap_loss",
    "legacy_decode_seq_overhead_us",
    "legacy_decode_step_overhead_ms",
    "legacy_worker_overhead_ms",
    "compute_efficiency",
    "operand_feed_bytes_per_cycle",
    "simt_efficiency",
    "simt_issue_share",
    "attention_efficiency",
    "dram_stream_headroom",
    "in_flight_bytes_per_l1_kb",
    "core_latency_cycles",
    "alpha_tensor",
    "fp32_pj_per_flop",
    "alpha_l2",
    "alpha_sm",
    "gap_activity",
    "dram_pj_per_bit",
)

# Set from kernel timings, not fitted by default (the shipped rows hardly identify them and, fitted, they drift
# to their priors whenever the rows that do are held out); `energaizer calibrate --parameters` fits them to a
# fleet's own measurements.
KERNEL_TIMED_PARAMETERS: tuple[str, ...] = (
    "gemm_dram_efficiency",
    "fused_dram_efficiency",
    "quantized_expert_efficiency",
)
CALIBRATABLE_PARAMETERS: tuple[str, ...] = FITTED_PARAMETERS + KERNEL_TIMED_PARAMETERS

# Parameters an older profile may still carry, and what replaced them.
RETIRED_PARAMETERS: dict[str, str] = {
    "alpha_fp": "replaced by fp32_pj_per_flop (CUDA-core power is energy per FLOP, not a share of TDP); "
    "re-run `energaizer calibrate` on your measurements",
    "dram_pj_per_bit_hbm": "replaced by dram_pj_per_bit (HBM2) x the memory technology's published ratio; "
    "re-run `energaizer calibrate` on your measurements",
    "dram_pj_per_bit_gddr": "replaced by dram_pj_per_bit (HBM2) x the memory technology's published ratio; "
    "re-run `energaizer calibrate` on your measurements",
}

DEFAULT_PROFILE_PATH = Path(__file__).resolve().parent / "data" / "profiles" / "default.json"


def load_profile(profile: CalibrationProfile | str | Path | None) -> CalibrationProfile:
    """None -> the shipped default profile; a path -> that JSON file; a profile -> itself."""
    if isinstance(profile, CalibrationProfile):
        return profile
    path = Path(profile) if profile is not None else DEFAULT_PROFILE_PATH
    from energaizer.files import read_text, unique_keys

    try:
        data = json.loads(
            read_text(path, "profile", max_bytes=16 * 1024 * 1024), object_pairs_hook=unique_keys
        )
    except InvalidInputError:  # missing, a folder, binary, not UTF-8: said as read_text says it
        raise
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            "profile", f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    except RecursionError:
        raise InvalidInputError("profile", f"{path} is nested too deeply to be a profile") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise InvalidInputError("profile", f"{path} is not valid JSON ({str(exc).split(';')[0]})") from None
    if not isinstance(data, dict):
        raise InvalidInputError("profile", f"{path} must hold one JSON object (see `energaizer calibrate`)")
    retired = sorted(k for k in data if k in RETIRED_PARAMETERS)
    if retired:
        raise InvalidInputError(retired[0], f"{path}: {RETIRED_PARAMETERS[retired[0]]}")
    try:
        return CalibrationProfile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ())) or "profile"
        raise InvalidInputError(loc, f"{path}: {pydantic_message(err)}") from None


def save_profile(profile: CalibrationProfile, path: str | Path) -> None:
    Path(path).write_text(profile.model_dump_json(indent=2) + "\n")
