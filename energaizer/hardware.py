"""GPU figures as NumPy columns, one entry per distinct GPU, plus the precision -> peak rules."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from energaizer.catalog.memory import dram_energy_ratio
from energaizer.catalog.schema import GPUSpec

# A precision the GPU lacks runs on the next one it has (weight-only quantised kernels run their
# math at 16 bit; bf16 on pre-Ampere runs as fp16; tf32 without tensor cores is SIMT fp32).
FALLBACK = {
    "fp4": ("fp4", "bf16", "fp16", "fp32"),  # MXFP4/NVFP4 without fp4 math: W4A16 (Marlin, matmul_ogs)
    "fp8": ("fp8", "bf16", "fp16", "fp32"),
    "int8": ("int8", "fp8", "fp16", "bf16", "fp32"),
    "bf16": ("bf16", "fp16", "fp32"),
    "fp16": ("fp16", "bf16", "fp32"),
    "tf32": ("tf32", "fp32"),
    "fp32": ("fp32",),
}
MATH_BYTES = {"fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5}
HOPPER_LIKE = {"hopper", "blackwell"}
# Blackwell's tensor cores run one MMA across a pair of SMs (CUTLASS "2SM" kernels, cta_group::2): the
# pair shares the B operand tile, so each SM stages only half of it.
PAIRED_MMA = {"blackwell"}
# Blackwell's tensor cores apply 8- and 4-bit operands' block scales inside the MMA (PTX tcgen05.mma
# kind::mxf8f6f4 / mxf4 / mxf4nvf4 with scale_vec): no partial sums leave the tensor core to be rescaled
# on the CUDA cores per K block, as Hopper's wgmma kernels do.
BLOCK_SCALED_MMA = {"blackwell"}
# A current serving engine's paged decode attention on datacenter Blackwell (SM100): vLLM auto-selects
# FlashInfer's trtllm-gen decode kernels (fmhaSm100f; vllm-project/vllm PR 19825), which stream the paged
# KV cache at 0.74-0.88 of a B200's datasheet DRAM peak (8 TB/s) in public isolated-kernel timings with
# 128-wide heads (NVIDIA/Megatron-LM PR 6462: 256 sequences, 4 KV heads, 512-2048 tokens; 0.61-0.73 with
# 64-wide heads, flashinfer-ai/flashinfer PR 1415), about what a copy reaches (0.84, NVIDIA/cccl PR 7391). At
# 0.85, with the model's per-wave and launch costs on top, the 128-wide timings come out within 20 %
# (tests/timing/test_memory_bandwidth.py). The paged FlashAttention kernels vLLM runs on Ampere and Hopper
# reach ~0.5 (the profile's fused_dram_efficiency). MLA's latent decode is not one of them: vLLM runs it on
# Blackwell with CUTLASS MLA (heads padded to 128), which streams the latent cache at 4.0-4.1 TB/s, ~0.5 of
# a B200's 8 TB/s, at 256 sequences of 2048-8192 tokens (sgl-project/sglang PR 6929's benchmark, 128 heads;
# 2.0-2.2 TB/s before it), so it keeps the fused kernels' share.
PAGED_DECODE_DRAM_SHARE = {"blackwell": 0.85}
# A serving engine's Mamba-2 selective state update (decode: each sequence's fp32 or 16-bit state read and
# written whole per step) is bound by what each SM keeps in flight, not by the DRAM peak: vLLM's Triton kernel
# at its tuned launch configurations moves 14.4 bytes per SM cycle on both a Hopper and a Blackwell part at
# the catalog's max clocks (vllm-project/vllm PR 44251, H200, fp32 states of 64 x 128, 8192 heads x
# sequences: 142.7 us for 537 MB = 3.76 TB/s, 0.78 of the HBM3e peak, 132 SMs x 1980 MHz; PR 43083, B200,
# 16-bit states, 8192-49152: 4.0-4.3 TB/s, 0.50-0.54 of 8 TB/s, 148 SMs x 1980 MHz), so an H100 streams it at
# the copies' share (its 3.35 TB/s is below what 132 SMs move) and an H200 or B200 below theirs. vLLM <= 0.11's
# untuned launch moves 10.9 (the H200's 188.2 us for the same 537 MB).
STATE_STREAM_BYTES_PER_SM_CYCLE = 14.4
# A serving engine's grouped GEMM for block-scaled FP8 experts on Hopper: vLLM 0.11 picks DeepGEMM's M-grouped
# contiguous GEMM for block-quantised checkpoints where deep_gemm is installed, as in its Docker image
# (get_fp8_moe_backend), and with its default E8M0 scales runs it at every batch size (is_deep_gemm_e8m0_used
# skips the M >= 128 check). It takes each local expert's rows in 128-row blocks from one buffer sized for the
# worst case, tokens x k + local experts x 127 rows rounded to 128 (compute_aligned_M: no per-expert counts on
# the host without an all-to-all backend), and tags the buffer's unused tail expert 0 (zero-initialised
# m_indices), which DeepGEMM computes like any other block (it skips only m_indices < 0): every such GEMM
# computes that many rows, ~10-40x the routed ones in a decode step (Qwen3-235B FP8 on 8 H100s: 2,176 rows per
# layer at 8 sequences). That is why those ML.ENERGY v3 runs (vLLM 0.11.1) are slower at batch 8 than the same
# model in bf16 and draw 450-530 W per GPU against 354 W. Not on Blackwell: there block-FP8 MoE is served with
# FlashInfer's TRT-LLM kernels, sized by the routed tokens (ML.ENERGY's DeepSeek B200 configs set
# VLLM_USE_FLASHINFER_MOE_FP8=1); vLLM from 0.12 also runs Triton instead at tensor-parallel 8 (PR 29346).
GROUPED_FP8_BLOCK_ROWS = {"hopper": 128.0}
SM_L2_BYTES_PER_CYCLE = 64.0  # per SM, order of A100/H100 L2 slice bandwidth
TMA_ALIGN_BYTES = 16  # stride alignment of Hopper's bulk tensor copies (and the widest vector load)


def math_precision(gpu: GPUSpec, precision: str) -> str:
    for p in FALLBACK[precision]:
        if p in gpu.peak_tflops:
            return p
    return "fp32"


WEIGHT_ONLY = {"fp4", "fp8", "int8"}  # quantised weights that weight-only kernels dequantise


def precision_fallback(gpu: GPUSpec, precision: str) -> str:
    """The ``reason`` note when ``gpu`` cannot run ``precision``'s math natively ("" when it can)."""
    math = math_precision(gpu, precision)
    if math == precision:
        return ""
    where = "CUDA cores" if math == "fp32" else "tensor cores"
    if precision in WEIGHT_ONLY:
        how = f"{precision} weights dequantised to {math} math on the {where} (weight-only kernels)"
    else:
        how = f"{math} math on the {where}"
    return f"precision {precision} is not supported by {gpu.id} ({gpu.architecture}): modelled as {how}"


# L1 data cache + shared memory per SM by architecture, for catalog entries that do not give
# l1_kb_per_sm (CUDA C++ Programming Guide, technical specifications per compute capability: 7.0 128 KB,
# 7.5 96, 8.0 192, 8.6 and 8.9 128, 9.0 and 10.0 256; AMD CDNA2 / CDNA3: 64 KB LDS + 16 / 32 KB L1 per
# CU). "ampere" takes the GA10x boards' 128 KB; the GA100 (A100) entries state 192.
L1_KB_BY_ARCHITECTURE = {
    "volta": 128.0,
    "turing": 96.0,
    "ampere": 128.0,
    "ada": 128.0,
    "hopper": 256.0,
    "blackwell": 256.0,
    "cdna2": 80.0,
    "cdna3": 96.0,
}
DEFAULT_L1_KB = 128.0  # an architecture not in the table


def _l1_kb(g: GPUSpec) -> float:
    if g.l1_kb_per_sm is not None:
        return g.l1_kb_per_sm
    return L1_KB_BY_ARCHITECTURE.get(g.architecture.lower(), DEFAULT_L1_KB)


def _fp32_lanes_per_sm(g: GPUSpec) -> float:
    lanes = g.peak_tflops["fp32"] * 1e12 / (g.sm_count * g.max_clock_mhz * 1e6 * 2.0)
    return float(2.0 ** np.round(np.log2(max(lanes, 1.0))))


@dataclass
class GpuTable:
    """The catalog figures of the distinct GPUs of a batch as NumPy columns (index: distinct-GPU index)."""

    specs: list[GPUSpec]
    sm_count: np.ndarray
    max_clock_mhz: np.ndarray  # SM clock, MHz
    min_clock_mhz: np.ndarray
    tensor_clock_mhz: np.ndarray  # the clock the datasheet peaks are quoted at
    dram_bytes_per_s: np.ndarray  # DRAM bandwidth
    l2_bytes: np.ndarray
    fp32_flops: np.ndarray  # CUDA-core FP32 peak, FLOP/s at tensor_clock_mhz
    link_bytes_per_s: np.ndarray  # one direction
    tdp_w: np.ndarray
    dynamic_power_w: np.ndarray  # the die's dynamic power scale at max_clock_mhz
    idle_power_w: np.ndarray
    power_limit_min_w: np.ndarray
    power_limit_max_w: np.ndarray
    power_limit_default_w: np.ndarray
    dram_energy_ratio: np.ndarray  # DRAM energy per bit relative to HBM2 (by memory technology)
    tile_m: np.ndarray
    tile_n: np.ndarray
    tma: (
        np.ndarray
    )  # bool: tensor-core GEMMs take the bulk-copy (TMA) path, which needs 16-byte aligned strides
    b_tile_sharing: np.ndarray  # SMs that share one B operand tile of a tensor-core GEMM (2 on Blackwell)
    block_scaled_mma: np.ndarray  # bool: the tensor cores apply low-precision block scales themselves
    # DRAM share of a serving engine's paged decode attention where the architecture's kernels set their
    # own (0: the profile's fused_dram_efficiency)
    paged_decode_dram_share: np.ndarray
    fp32_lanes: np.ndarray  # FP32 lanes per SM (datasheet fp32 peak / (SMs x max clock x 2)), a power of 2
    l1_kb: np.ndarray  # L1 data cache + shared memory per SM, KB

    @classmethod
    def from_specs(cls, specs: list[GPUSpec]) -> GpuTable:
        def col(fn) -> np.ndarray:
            return np.array([fn(g) for g in specs], dtype=np.float64)

        def arch_in(architectures: set[str]) -> np.ndarray:
            return np.array([g.architecture.lower() in architectures for g in specs], dtype=bool)

        return cls(
            specs=specs,
            sm_count=col(lambda g: g.sm_count),
            max_clock_mhz=col(lambda g: g.max_clock_mhz),
            min_clock_mhz=col(lambda g: g.clock_range_mhz[0]),
            tensor_clock_mhz=col(lambda g: g.tensor_clock_mhz),
            dram_bytes_per_s=col(lambda g: g.memory_bw_gbs * 1e9),
            l2_bytes=col(lambda g: g.l2_mb * 1e6),
            fp32_flops=col(lambda g: g.peak_tflops["fp32"] * 1e12),
            link_bytes_per_s=col(
                lambda g: (g.interconnect_bw_gbs if g.interconnect_bw_gbs else g.pcie_bw_gbs) * 1e9 / 2
            ),
            tdp_w=col(lambda g: g.tdp_w),
            dynamic_power_w=col(lambda g: g.dynamic_power_w or g.tdp_w - g.idle_power_w),
            idle_power_w=col(lambda g: g.idle_power_w),
            power_limit_min_w=col(lambda g: g.power_limit_range_w[0]),
            power_limit_max_w=col(lambda g: g.power_limit_range_w[1]),
            power_limit_default_w=col(lambda g: g.power_limit_default_w),
            dram_energy_ratio=col(lambda g: dram_energy_ratio(g.memory_type, g.memory_technology)),
            tile_m=col(lambda g: 128.0),
            tile_n=col(lambda g: 256.0 if g.architecture.lower() in HOPPER_LIKE else 128.0),
            tma=arch_in(HOPPER_LIKE),
            b_tile_sharing=col(lambda g: 2.0 if g.architecture.lower() in PAIRED_MMA else 1.0),
            block_scaled_mma=arch_in(BLOCK_SCALED_MMA),
            paged_decode_dram_share=col(lambda g: PAGED_DECODE_DRAM_SHARE.get(g.architecture.lower(), 0.0)),
            fp32_lanes=col(_fp32_lanes_per_sm),
            l1_kb=col(_l1_kb),
        )

    def math_bytes(self, gpu_index: int, precision: str) -> float:
        """Element size of the math this precision runs in on this GPU (its fallback where it has none)."""
        return MATH_BYTES[math_precision(self.specs[gpu_index], precision)]

    def peak(self, gpu_index: int, precision: str) -> tuple[float, bool]:
        """(FLOP/s at tensor_clock_mhz for this precision's math, runs on tensor cores?)."""
        g = self.specs[gpu_index]
        p = math_precision(g, precision)
        return g.peak_tflops[p] * 1e12, p != "fp32"
