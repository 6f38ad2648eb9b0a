"""Time and module utilisation of each kernel at a given SM clock (vectorised).

GEMMs run as tiles (BM x BN) in waves over the SMs: wave quantisation and the tail are explicit,
split-K fills the machine when there are fewer tiles than SMs, and DRAM traffic is the compulsory
operand/result traffic (ideal L2 reuse under threadblock swizzle) plus split-K partials. Fused
attention tiles over query blocks (prefill) or KV blocks (decode). Memory-bound kernels stream
their bytes. The correction terms from the calibration profile add a fixed latency per launch, a cost per
wave of tiles and the
time tensor-core tiles take to stage their operands, and scale the achievable compute and bandwidth.
Host dispatch costs are applied per row in the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from energaizer.hardware import (
    SM_L2_BYTES_PER_CYCLE,
    STATE_STREAM_BYTES_PER_SM_CYCLE,
    TMA_ALIGN_BYTES,
    GpuTable,
)
from energaizer.kernels.ops import Kind, Op, Phase
from energaizer.kernels.table import KernelTable
from energaizer.profile import CalibrationProfile

ATTENTION_DECODE_ROWS = 64  # query rows per tile at or below which attention tiles over KV blocks
# The DRAM side of a streaming load's round trip (memory controller and device), in ns. Only the ratios
# of the profile's in_flight_bytes_per_l1_kb and core_latency_cycles to it enter the bandwidth, so it
# fixes their scale rather than being fitted beside them.
DRAM_LATENCY_NS = 400.0


@dataclass
class KernelDevice:
    """Per-kernel hardware columns (gathered once from the row's GPU and precision)."""

    g: np.ndarray  # distinct-GPU index
    peak: np.ndarray  # FLOP/s of the kernel's math unit at the GPU's tensor_clock_mhz
    tensor: np.ndarray  # bool: math on tensor cores
    # element size of the math precision: GEMMs whose weights are narrower (fp8 on Ampere, fp4 on Hopper)
    # are weight-only kernels that dequantise every weight they load; None: no such kernels
    math_bytes: np.ndarray | None = None

    def subset(self, idx: np.ndarray) -> KernelDevice:
        """The columns of kernels ``idx``."""
        mb = None if self.math_bytes is None else self.math_bytes[idx]
        return KernelDevice(g=self.g[idx], peak=self.peak[idx], tensor=self.tensor[idx], math_bytes=mb)


@dataclass
class KernelTiming:
    t_exec: np.ndarray  # device-busy seconds per launch
    u_tensor: np.ndarray
    u_fp: np.ndarray
    u_l2: np.ndarray
    u_dram: np.ndarray
    u_busy: np.ndarray
    fp_flop_rate: np.ndarray  # FLOP/s executed on the CUDA cores (SIMT GEMMs, elementwise math)
    t_compute: np.ndarray  # the compute-bound part of t_exec (for the breakdown)


@dataclass
class TimingPlan:
    """The clock-independent columns of :func:`kernel_timing` for one kernel table on one set of devices
    (computed once, reused at every clock the power-cap bisection tries)."""

    sm: np.ndarray
    tensor_clock_mhz: np.ndarray
    fp32_flops: np.ndarray
    quantized: np.ndarray
    stream_peak: np.ndarray  # achievable DRAM bytes/s at full speed
    stream_headroom: np.ndarray  # headroom x DRAM bytes/s (scaled by clock / f_max)
    in_flight: np.ndarray  # bytes all SMs keep in flight in an eager memory-bound kernel (0: other kernels)
    # bytes all SMs move per cycle in an SM-bound stream (recurrent states; inf: others)
    sm_stream: np.ndarray
    max_clock_mhz: np.ndarray
    is_attn: np.ndarray
    is_comm: np.ndarray
    issue: np.ndarray
    attn_waves: np.ndarray
    attn_work: np.ndarray  # attention waves x FLOPs per tile
    attn_eff: np.ndarray
    t_link: np.ndarray
    u_tensor_mask: np.ndarray
    simt_math: np.ndarray
    l2_per_cycle: np.ndarray  # L2 bytes per cycle over all SMs
    u_busy: np.ndarray
    stall_activity: np.ndarray  # SM-activity share while memory-bound (async_stall_activity; 1: fully busy)
    latency: np.ndarray  # fixed device seconds per launch (kernel_latency_s)
    l2_resident: np.ndarray  # share of a chained kernel's bytes served from L2 (l2_resident_share)
    gemm: GemmPlan


def eager_bytes_in_flight(hw: GpuTable, g: np.ndarray, prof: CalibrationProfile) -> np.ndarray:
    """Bytes all SMs of GPU ``g`` keep in flight in an eager framework kernel's stream: SMs x the SM's
    L1 + shared memory x ``in_flight_bytes_per_l1_kb``."""
    return hw.sm_count[g] * hw.l1_kb[g] * prof.in_flight_bytes_per_l1_kb


def latency_bound_bytes_per_s(
    in_flight: np.ndarray, clock_hz: np.ndarray, prof: CalibrationProfile
) -> np.ndarray:
    """Little's law: the DRAM bytes/s that ``in_flight`` bytes sustain when a load's round trip is
    ``DRAM_LATENCY_NS`` plus ``core_latency_cycles`` at ``clock_hz``."""
    return in_flight / (DRAM_LATENCY_NS * 1e-9 + prof.core_latency_cycles / clock_hz)


def kernel_latency_s(kt: KernelTable, prof: CalibrationProfile) -> np.ndarray:
    """Fixed device seconds of every launch of ``kt`` beside its waves and its work: the front end
    starting the grid, the first loads' DRAM latency before the stream reaches its rate, the last
    stores draining and the next launch starting (a CUDA-graph replay of a tiny kernel takes ~1.1 us
    per launch on an H100; a large copy's time is ~1.8 us plus its bytes at 0.92 of the HBM peak).
    Collectives carry their own latency (``comm_latency_us``)."""
    return np.where(kt.kind == Kind.COMM, 0.0, prof.kernel_latency_us * 1e-6)


# Share of the catalog L2 that holds a stream every SM reads: A100/H100-class L2s are two partitions, each
# caching what the SMs of its own GPCs read, so lines that all SMs touch are held twice.
L2_STREAM_SHARE = 0.5


def l2_resident_share(kt: KernelTable, hw: GpuTable, g: np.ndarray) -> np.ndarray:
    """Share of each chained eager kernel's bytes that stay on chip: a tensor one kernel writes and the
    next reads (and the freed block the caching allocator hands to the next output) stays in the write-
    back L2 when the kernel's footprint fits beside everything else there. With C the L2 capacity for a
    stream every SM reads (``L2_STREAM_SHARE`` of the catalog's ``l2_mb``): all of it while the footprint
    is at most half of C (the other half holds the other operands), none from C on (a stream larger than
    the cache evicts its own lines before the next kernel reads them), linear between. Kernels with no
    footprint (everything but the eager elementwise chains) are served from DRAM."""
    ratio = kt.l2_footprint / (L2_STREAM_SHARE * hw.l2_bytes[g])
    return np.where(kt.l2_footprint > 0, np.clip(2.0 - 2.0 * ratio, 0.0, 1.0), 0.0)


def plan_timing(kt: KernelTable, dev: KernelDevice, hw: GpuTable, prof: CalibrationProfile) -> TimingPlan:
    """The clock-independent part of :func:`kernel_timing` for ``kt`` on ``dev``."""
    g = dev.g
    sm = hw.sm_count[g]
    # Grouped expert GEMMs on 8-bit (or narrower) weights, by the kernels a serving engine runs for them:
    # - 128 x 128 block-scaled W8A8 (Triton / DeepGEMM fused MoE): rescale their partial sums per K block
    #   on the CUDA cores (unless the tensor cores apply the scales) and run at the public Triton kernels'
    #   share of the bf16 rates, quantized_expert_efficiency, beyond that work;
    # - per-channel W8A8 (CUTLASS grouped GEMMs, scales in the epilogue): the bf16 kernels' rates;
    # - weight-only (MXFP4 on Hopper: W4A16): dequantise on the CUDA cores (_gemm_tiling) and stream their
    #   packed weights at the bf16 kernels' rate (a public serving benchmark: tests/timing/test_gemm_time.py).
    low = kt.moe_grouped & (kt.precision_bytes < 2.0)
    weight_only = (
        np.zeros(kt.m.shape, dtype=bool) if dev.math_bytes is None else kt.precision_bytes < dev.math_bytes
    )
    block_scaled = low & ~weight_only & ~kt.channel_scaled
    quantized = np.where(block_scaled, prof.quantized_expert_efficiency, 1.0)
    scaled = block_scaled & ~hw.block_scaled_mma[g]  # rescaled on the CUDA cores
    kind = kt.kind
    is_gemm, is_attn, is_mem, is_comm = (
        kind == Kind.GEMM,
        kind == Kind.ATTENTION,
        kind == Kind.MEMORY,
        kind == Kind.COMM,
    )
    issue = _issue_share(prof, hw, g)
    math_eff = np.where(dev.tensor, prof.compute_efficiency, prof.simt_efficiency * issue)
    # decode (a few packed query rows per KV head): split over KV blocks; prefill: query blocks
    decode_rows = kt.m <= ATTENTION_DECODE_ROWS
    attn_tiles = np.where(
        decode_rows,
        kt.gemm_group * np.ceil(kt.n / 512.0),
        kt.gemm_group * np.ceil(kt.m / 128.0),
    )
    attn_tile_flops = kt.flops / np.maximum(attn_tiles, 1.0)
    attn_waves = np.maximum(np.ceil(attn_tiles / sm), 1.0)
    dram = hw.dram_bytes_per_s[g]
    eager_stream = is_mem & kt.eager
    # a serving engine's recurrent-state update: contiguous per-sequence states at the copies' share, at
    # most what the SMs move per cycle (STATE_STREAM_BYTES_PER_SM_CYCLE)
    state_stream = is_mem & kt.recurrent_state & ~kt.eager
    # a serving engine's paged decode attention streams at its architecture's kernels' share where the
    # catalog knows one (Blackwell's trtllm-gen GQA kernels), else at the fused kernels' share (MLA's latent
    # decode included: CUTLASS MLA, see energaizer.hardware.PAGED_DECODE_DRAM_SHARE)
    own_share = hw.paged_decode_dram_share[g]
    fused_share = np.where(
        is_attn & decode_rows & ~kt.eager & ~kt.latent_attention & (own_share > 0),
        own_share,
        prof.fused_dram_efficiency,
    )
    return TimingPlan(
        sm=sm,
        tensor_clock_mhz=hw.tensor_clock_mhz[g],
        fp32_flops=hw.fp32_flops[g],
        quantized=quantized,
        stream_peak=dram
        * np.where(
            is_gemm,
            prof.gemm_dram_efficiency,
            np.where(eager_stream | state_stream, prof.dram_efficiency, fused_share),
        ),
        stream_headroom=prof.dram_stream_headroom * dram,
        in_flight=np.where(eager_stream, eager_bytes_in_flight(hw, g, prof), 0.0),
        sm_stream=np.where(state_stream, sm * STATE_STREAM_BYTES_PER_SM_CYCLE, np.inf),
        max_clock_mhz=hw.max_clock_mhz[g],
        is_attn=is_attn,
        is_comm=is_comm,
        issue=issue,
        attn_waves=attn_waves,
        attn_work=attn_waves * attn_tile_flops,
        attn_eff=math_eff * np.where(is_attn, prof.attention_efficiency, 1.0),
        t_link=np.where(
            is_comm,
            kt.comm_bytes / (hw.link_bytes_per_s[g] * prof.link_efficiency) + prof.comm_latency_us * 1e-6,
            0.0,
        ),
        u_tensor_mask=dev.tensor & ~is_mem & ~is_comm,
        simt_math=~(dev.tensor | is_mem | is_comm),
        l2_per_cycle=SM_L2_BYTES_PER_CYCLE * sm,
        u_busy=np.where(is_comm, 0.3, 1.0),
        # a bulk-copy (TMA) GPU's GEMMs stage their tiles asynchronously: the warps wait at barriers
        stall_activity=np.where(hw.tma[g] & is_gemm, prof.async_stall_activity, 1.0),
        latency=kernel_latency_s(kt, prof),
        l2_resident=l2_resident_share(kt, hw, g),
        gemm=_plan_gemm(kt, dev, hw, prof, np.nonzero(is_gemm)[0], math_eff, scaled, weight_only),
    )


def kernel_timing(
    kt: KernelTable,
    dev: KernelDevice,
    clock_mhz: np.ndarray,
    hw: GpuTable,
    prof: CalibrationProfile,
    plan: TimingPlan | None = None,
) -> KernelTiming:
    """Seconds per launch and module utilisation of every kernel of ``kt`` at SM clock ``clock_mhz``
    (one per kernel), on the GPUs and math units of ``dev``. ``plan``: :func:`plan_timing` of the same
    ``kt`` and ``dev`` (computed here when None), for callers that evaluate one table at many clocks.

    A launch takes the longest of its compute time (GEMMs: tiles in waves, :func:`_gemm_tiling`; fused
    attention: query or KV blocks in waves), its CUDA-core time (``fp_flops``), its DRAM time (bytes at
    the bandwidth the clock allows) and its link time (collectives), plus a cost per wave (in cycles)
    and a fixed latency per launch (:func:`kernel_latency_s`). The
    utilisations (tensor cores, CUDA cores, L2, DRAM, SM busy) are what :func:`energaizer.power.model.
    kernel_power` turns into watts.
    """
    pl = plan_timing(kt, dev, hw, prof) if plan is None else plan
    g = dev.g
    clock_hz = clock_mhz * 1e6
    sm = pl.sm
    clock_scale = clock_mhz / pl.tensor_clock_mhz
    peak_f = dev.peak * clock_scale
    fp32_f = pl.fp32_flops * clock_scale
    # Achievable DRAM bandwidth at this clock. The memory-bound kernels of eager framework code
    # (PyTorch's elementwise, norm and softmax kernels) keep a bounded number of bytes in flight per SM,
    # in proportion to the SM's L1 + shared memory where their loads land, and a load's round trip is a
    # DRAM part in ns plus a part in core cycles (L1, crossbar, L2), so by Little's law they draw SMs x
    # bytes in flight / (DRAM latency + core cycles / clock), at most the copies' share of the peak. An
    # HBM part with many bytes to move per SM (A100) is thus latency-bound and slows with the clock at
    # every clock, a GDDR part with few (A10) less so; the A100 DVFS rows split alike, about half of the
    # eager kernels' time at 870 MHz scaling with the clock (benchmarks/clock_sensitivity.py). GEMMs and
    # fused engine or library kernels (fused attention, a serving engine's norms, activations and
    # sampler) stage their loads asynchronously and keep their share of the peak down to a knee (the
    # share over ``dram_stream_headroom`` x f_max), below which they slow with the clock.
    knee = np.minimum(pl.stream_peak, pl.stream_headroom * clock_mhz / pl.max_clock_mhz)
    little = latency_bound_bytes_per_s(pl.in_flight, clock_hz, prof)
    bw = np.where(pl.in_flight > 0, np.minimum(pl.stream_peak, little), knee) * pl.quantized
    bw = np.minimum(bw, pl.sm_stream * clock_hz)
    is_attn, is_comm = pl.is_attn, pl.is_comm

    # --- GEMM tiling: the library picks the tile shape (and split-K) that finishes first ---
    gemm = _gemm_tiling(pl.gemm, peak_f * pl.quantized, bw, clock_hz, prof)
    gi = pl.gemm.idx

    # --- attention tiling: query or KV blocks in waves ---
    waves = np.where(is_attn, pl.attn_waves, 1.0)
    waves[gi] = gemm.waves
    t_comp = np.where(is_attn, pl.attn_work / (peak_f / sm * pl.attn_eff), 0.0)
    t_comp[gi] = gemm.t_comp
    t_fp = kt.fp_flops / (fp32_f * prof.compute_efficiency)
    nbytes = kt.bytes.copy()
    nbytes[gi] = gemm.bytes
    l2_bw = pl.l2_per_cycle * clock_hz
    # chained eager kernels whose tensors stay in L2 move their bytes at the L2's rate, not DRAM's
    dram_bytes = nbytes * (1.0 - pl.l2_resident)
    t_mem = np.where(
        is_comm, 0.0, np.maximum(dram_bytes / bw, np.where(pl.l2_resident > 0, nbytes / l2_bw, 0.0))
    )
    t_wave = np.where(is_comm, 0.0, waves * prof.wave_overhead_cycles / clock_hz)
    t_exec = np.maximum.reduce([t_comp, t_fp, t_mem, pl.t_link]) + t_wave + pl.latency
    t_exec = np.maximum(t_exec, 1e-9)

    useful = kt.flops
    u_math = useful / (peak_f * t_exec)
    u_tensor = np.where(pl.u_tensor_mask, u_math, 0.0)
    # an issue-bound SIMT GEMM keeps every issue slot busy: its activity is relative to the issue limit
    u_simt = u_math / pl.issue
    simt_math = pl.simt_math
    fp_flops = kt.fp_flops.copy()
    fp_flops[gi] += gemm.fp_flops
    simt_flops = np.where(simt_math, useful, 0.0) + fp_flops
    u_fp = np.where(simt_math, u_simt, 0.0) + fp_flops / (fp32_f * t_exec)
    l2_bytes = nbytes.copy()
    l2_bytes[gi] = gemm.l2_bytes
    u_l2 = l2_bytes / (l2_bw * t_exec)
    u_dram = dram_bytes / (hw.dram_bytes_per_s[g] * t_exec)
    clip = lambda u: np.clip(u, 0.0, 1.0)  # noqa: E731
    t_compute = np.minimum(np.maximum(t_comp, t_fp), t_exec)
    return KernelTiming(
        t_exec=t_exec,
        u_tensor=clip(u_tensor),
        u_fp=clip(u_fp),
        u_l2=clip(u_l2),
        u_dram=clip(u_dram),
        # the SMs are busy (issuing, stalled on their loads) for the work and the waves, not while the
        # grid starts and drains (a tiny kernel replayed back to back draws little over idle power); where
        # the loads are asynchronous, only the math's share of the time keeps them fully active
        u_busy=pl.u_busy
        * (1.0 - pl.latency / t_exec)
        * (pl.stall_activity + (1.0 - pl.stall_activity) * t_compute / t_exec),
        fp_flop_rate=simt_flops / t_exec,
        t_compute=t_compute,
    )


# Block-scaled 8-bit GEMMs (DeepSeek-style 128-wide K blocks, vLLM's FP8 fused MoE)
SCALE_BLOCK_K = 128.0
SCALE_ISSUE_PER_ACC = 2.0
SCALE_FLOPS_PER_ACC = 3.0
# Weight-only kernels (Marlin-style): one bit-manipulation instruction (LOP3/PRMT) converts two packed
# weights and one packed HFMA2 applies their scale: 1 issue slot and 1 FLOP per weight
DEQUANT_ISSUE_PER_WEIGHT = 1.0
DEQUANT_FLOPS_PER_WEIGHT = 1.0

# Tile shapes (BM, BN) a GEMM library chooses from; BN = 0 stands for the GPU's widest tile.
GEMM_TILE_SHAPES = ((128.0, 0.0), (128.0, 128.0), (64.0, 128.0), (64.0, 64.0))


@dataclass
class GemmTiling:
    waves: np.ndarray
    t_comp: np.ndarray  # compute-bound seconds (math or operand feed), without the per-wave overhead
    bytes: np.ndarray  # DRAM bytes incl. split-K partials
    l2_bytes: np.ndarray
    fp_flops: np.ndarray  # CUDA-core FLOPs per launch (block scales of low-precision GEMMs)


# An SM sub-partition issues one warp instruction per clock. With 16 FP32 lanes (64 per SM: V100,
# A100) a warp FFMA occupies them for two clocks, leaving every other issue slot for the loads and
# address math of a SIMT GEMM; with 32 lanes (128 per SM: GA10x, Ada, Hopper) every such instruction
# takes an FFMA slot, so a SIMT GEMM reaches only its FFMA share of the datasheet peak.
ISSUE_BOUND_FP32_LANES = 128.0


def _issue_share(prof: CalibrationProfile, hw: GpuTable, g: np.ndarray) -> np.ndarray:
    return np.where(hw.fp32_lanes[g] >= ISSUE_BOUND_FP32_LANES, prof.simt_issue_share, 1.0)


def _operand_feed_fraction(
    n: np.ndarray, k: np.ndarray, precision_bytes: np.ndarray, tensor: np.ndarray, hw: GpuTable, g: np.ndarray
) -> np.ndarray:
    """Share of the operand feed a tensor-core GEMM gets from its loads' width.

    On Hopper-class GPUs the fast GEMMs load tiles with bulk tensor copies, which need 16-byte aligned
    strides; a GEMM whose inner or outer dimension breaks that (GPT-2's 50257-token vocabulary, BERT's
    30522) falls back to kernels that load align bytes at a time (H100 profile: the GPT-2 LM head runs
    at 95 TFLOP/s, BERT's at 246, aligned shapes at ~650). Other GPUs' kernels of each alignment are
    native and keep the full feed (A100 GPT-2 rows show no such loss)."""
    nb = np.rint(n * precision_bytes).astype(np.int64)
    kb = np.rint(k * precision_bytes).astype(np.int64)
    low = np.minimum(nb & -nb, kb & -kb)
    align = np.clip(np.where(low > 0, low, TMA_ALIGN_BYTES), 1, TMA_ALIGN_BYTES)
    return np.where(hw.tma[g] & tensor, align / TMA_ALIGN_BYTES, 1.0)


# Context lengths over which a decode step's eager attention GEMMs average their operand alignment: the
# steps run every length, and 32 consecutive ones hold every residue that 16-byte alignment sees.
CONTEXT_ALIGNMENT_PERIOD = 32


def _context_feed_fraction(
    other: np.ndarray, precision_bytes: np.ndarray, tensor: np.ndarray, hw: GpuTable, g: np.ndarray
) -> np.ndarray:
    """:func:`_operand_feed_fraction` of a GEMM with one dimension the context length and the other
    ``other``, over the decode steps: their contexts take every length, so the kernel stages its operands
    at the harmonic mean of the lengths' shares (the mean of their staging times), not at the share of the
    one mean context the kernel table holds (a half-token mean is no stride: its parity, not the workload,
    set the share, and one more output token moved a decode's eager attention 3x)."""
    lengths = np.arange(1.0, CONTEXT_ALIGNMENT_PERIOD + 1.0)[:, None] + np.zeros_like(other)
    share = _operand_feed_fraction(lengths, other, precision_bytes, tensor, hw, g)
    return 1.0 / np.mean(1.0 / share, axis=0)


@dataclass
class GemmPlan:
    """The clock-independent tiling of the GEMM kernels ``idx`` of a table: per candidate tile shape
    (first axis, :data:`GEMM_TILE_SHAPES`) and kernel, the waves, the work and traffic of a wave."""

    idx: np.ndarray  # the GEMM kernels' positions in the table
    sm: np.ndarray
    math_eff: np.ndarray
    feed_per_cycle: np.ndarray  # operand bytes per SM cycle (before the alignment share)
    feed_fraction: np.ndarray
    lanes: np.ndarray  # FP32 lanes per SM
    serial: np.ndarray  # bool: staging does not overlap the MMAs
    cuda_core_work: bool  # some kernel rescales partial sums or dequantises weights
    waves: np.ndarray
    tile_flops: np.ndarray  # 2 BM BN K/split: a tile's math
    operand_bytes: np.ndarray  # a tile's staged operand bytes
    bytes: np.ndarray  # DRAM bytes incl. split-K partials
    l2_bytes: np.ndarray
    scale_issue: np.ndarray  # issue slots per tile rescaling partial sums
    dequant: np.ndarray  # weights a tile dequantises
    fp_flops: np.ndarray  # CUDA-core FLOPs per launch


def _plan_gemm(
    kt: KernelTable,
    dev: KernelDevice,
    hw: GpuTable,
    prof: CalibrationProfile,
    idx: np.ndarray,
    math_eff: np.ndarray,
    scaled: np.ndarray,
    weight_only: np.ndarray,
) -> GemmPlan:
    """Tiles in waves over the SMs for each candidate tile shape, split-K when there are fewer tiles
    than SMs (see :func:`_gemm_tiling`), for the GEMM kernels ``idx``."""
    m, n, k = kt.m[idx], kt.n[idx], kt.k[idx]
    group, pb, kbytes = kt.gemm_group[idx], kt.precision_bytes[idx], kt.bytes[idx]
    g = dev.g[idx]
    tensor = dev.tensor[idx]
    scaled, weight_only = scaled[idx], weight_only[idx]
    sm = hw.sm_count[g]
    tile_n = hw.tile_n[g]
    b_share = np.where(tensor, hw.b_tile_sharing[g], 1.0)
    cuda_core_work = bool(scaled.any() or weight_only.any())  # most batches have none: skip the arrays
    feed_fraction = _operand_feed_fraction(n, k, pb, tensor, hw, g)
    # a decode step's eager attention: Q K^T (n the context) and P V (k the context) at the mean context
    op = kt.op[idx]
    scores = (op == Op.ATTN_SCORES) & (kt.phase[idx] == Phase.DECODE)
    values = (op == Op.ATTN_VALUES) & (kt.phase[idx] == Phase.DECODE)
    for sel, other in ((scores, k), (values, n)):
        if sel.any():
            feed_fraction[sel] = _context_feed_fraction(other[sel], pb[sel], tensor[sel], hw, g[sel])
    shapes = len(GEMM_TILE_SHAPES)
    names = (
        "waves",
        "tile_flops",
        "operand_bytes",
        "bytes",
        "l2_bytes",
        "scale_issue",
        "dequant",
        "fp_flops",
    )
    cols = {name: np.zeros((shapes, m.size)) for name in names}
    for s, (bm0, bn0) in enumerate(GEMM_TILE_SHAPES):
        bm = np.where(m <= 64, 64.0, bm0)
        bn = tile_n if bn0 == 0.0 else np.minimum(tile_n, bn0)
        tiles0 = group * np.ceil(m / bm) * np.ceil(n / bn)
        split = np.where(
            tiles0 < sm,
            np.clip(np.floor(sm / np.maximum(tiles0, 1.0)), 1.0, np.maximum(np.floor(k / 256.0), 1.0)),
            1.0,
        )
        k_split = k / split
        operand_bytes = (bm + bn / b_share) * k_split * pb
        cols["waves"][s] = np.maximum(np.ceil(tiles0 * split / sm), 1.0)
        cols["tile_flops"][s] = 2.0 * bm * bn * k_split
        cols["operand_bytes"][s] = operand_bytes
        cols["bytes"][s] = kbytes + np.where(split > 1, group * m * n * 4.0 * split, 0.0)
        cols["l2_bytes"][s] = tiles0 * split * operand_bytes
        if cuda_core_work:  # otherwise the zeros
            scale_blocks = np.where(scaled, np.ceil(k_split / SCALE_BLOCK_K), 0.0)
            dequant = np.where(weight_only, bn * k_split, 0.0)
            cols["scale_issue"][s] = SCALE_ISSUE_PER_ACC * bm * bn * scale_blocks
            cols["dequant"][s] = DEQUANT_ISSUE_PER_WEIGHT * dequant
            cols["fp_flops"][s] = (
                tiles0
                * split
                * (SCALE_FLOPS_PER_ACC * bm * bn * scale_blocks + DEQUANT_FLOPS_PER_WEIGHT * dequant)
            )
    return GemmPlan(
        idx=idx,
        sm=sm,
        math_eff=math_eff[idx],
        # operand bytes/s per SM: tensor-core tiles stage theirs at the profile's rate, which their MMAs
        # do not hide; SIMT tiles load at the L2 slice rate, overlapped with their FFMAs
        feed_per_cycle=np.where(tensor, prof.operand_feed_bytes_per_cycle, SM_L2_BYTES_PER_CYCLE),
        feed_fraction=feed_fraction,
        lanes=hw.fp32_lanes[g],
        # register-fed MMAs (Volta-Ada) wait for their staged operands; Hopper/Blackwell bulk copies
        # (TMA) stage the next k-block while wgmma/tcgen05 math runs on the current one
        serial=tensor & ~hw.tma[g],
        cuda_core_work=cuda_core_work,
        **cols,
    )


def _gemm_tiling(
    plan: GemmPlan,
    peak_f: np.ndarray,
    bw: np.ndarray,
    clock_hz: np.ndarray,
    prof: CalibrationProfile,
) -> GemmTiling:
    """The tile shape of each GEMM of ``plan`` that finishes first at ``clock_hz`` (as cuBLAS/CUTLASS
    heuristics pick a smaller tile to fill the machine); ``peak_f``, ``bw``, ``clock_hz``: per kernel of
    the whole table. A tensor-core tile takes its math time plus the time to stage its
    operands at ``operand_feed_bytes_per_cycle`` per SM: the staging rate does not grow with the tensor
    cores' width, so an A100 (2048 FLOP/clk/SM) reaches a smaller share of its peak than an A10 or V100
    (1024), and small tiles pay for their lower reuse. (Fitted on V100, A10, A100 and H100 rows at once,
    this one rule beat an efficiency per GPU generation and one that hides Hopper's asynchronous staging.)
    SIMT tiles overlap their loads with the FFMAs and are bound by the slower of the two.

    Block-scaled low-precision GEMMs rescale the tile's fp32 partial sums on the CUDA cores after
    every scale block of K (multiply by the activation x weight scale, add: 2 issue slots and
    3 FLOPs per accumulator), after the MMAs of that block complete: serial with the tile.
    Weight-only kernels convert every weight of their B tile to the math precision on the CUDA
    cores, software-pipelined with the MMAs and loads of the previous K block (Marlin): it draws
    power, and sets the pace only where it is the slowest of the three."""
    idx = plan.idx
    clock_hz = clock_hz[idx]
    bw = bw[idx]
    rate = peak_f[idx] / plan.sm * plan.math_eff  # FLOP/s per SM
    feed = plan.feed_per_cycle * clock_hz * plan.feed_fraction
    overhead = prof.wave_overhead_cycles / clock_hz
    lanes_hz = plan.lanes * clock_hz
    count = idx.size
    best_s = np.zeros(count, dtype=np.int64)
    best_t = np.full(count, np.inf)
    t_comps = np.empty((len(GEMM_TILE_SHAPES), count))
    for s in range(len(GEMM_TILE_SHAPES)):
        waves = plan.waves[s]
        t_math = plan.tile_flops[s] / rate
        t_stage = plan.operand_bytes[s] / feed
        per_wave = np.where(plan.serial, t_math + t_stage, np.maximum(t_math, t_stage))
        if plan.cuda_core_work:
            per_wave = per_wave + plan.scale_issue[s] / lanes_hz
            per_wave = np.maximum(per_wave, plan.dequant[s] / lanes_hz)
        t_comp = np.multiply(waves, per_wave, out=t_comps[s])
        t = np.maximum(t_comp, plan.bytes[s] / bw) + waves * overhead
        better = t < best_t
        np.copyto(best_t, t, where=better)
        best_s[better] = s
    flat = best_s * count + np.arange(count)
    return GemmTiling(
        waves=plan.waves.ravel()[flat],
        t_comp=t_comps.ravel()[flat],
        bytes=plan.bytes.ravel()[flat],
        l2_bytes=plan.l2_bytes.ravel()[flat],
        fp_flops=plan.fp_flops.ravel()[flat],
    )
