"""Memory-bound kernels: achievable DRAM bandwidth vs SM clock.

Eager framework kernels follow Little's law: SMs x bytes in flight per SM (in proportion to the SM's L1 +
shared memory) / (DRAM latency + core cycles / clock), at most the copies' share of the peak. GEMMs and
fused kernels stream at their own share down to a knee, below which they slow with the clock.
"""

from __future__ import annotations

import numpy as np
import pytest
from gemm_support import one_gemm, one_kernel

from energaizer import Workload, estimate
from energaizer.catalog import get_gpu
from energaizer.hardware import (
    DEFAULT_L1_KB,
    L1_KB_BY_ARCHITECTURE,
    STATE_STREAM_BYTES_PER_SM_CYCLE,
    GpuTable,
)
from energaizer.kernels.ops import Op, Phase
from energaizer.profile import CalibrationProfile, load_profile
from energaizer.timing.kernel_time import DRAM_LATENCY_NS, kernel_timing

NBYTES = 4e9
NO_FIXED = {"wave_overhead_cycles": 0.0, "kernel_latency_us": 0.0}


def _stream_table(nbytes: float = NBYTES, eager: bool = True):
    return one_kernel(Op.ELEMENTWISE, Phase.PREFILL, bytes=nbytes, precision_bytes=2.0, eager=eager)


def _seconds(prof: CalibrationProfile, device, gpu: str, mhz: float, eager: bool = True) -> float:
    hw, dev = device(gpu, "bf16")
    return float(kernel_timing(_stream_table(eager=eager), dev, np.array([mhz]), hw, prof).t_exec[0])


@pytest.mark.parametrize("gpu", ["a100-pcie-40gb", "h100-sxm", "a10"])
def test_latency_bound_stream_time_is_affine_in_the_clock_period(gpu, device):
    """With few bytes in flight a stream never reaches its DRAM share: its time is bytes x (DRAM latency +
    core cycles / f) / (SMs x bytes in flight per SM), a clock-free part plus one in 1 / f."""
    prof = CalibrationProfile(
        dram_efficiency=0.9, in_flight_bytes_per_l1_kb=10.0, core_latency_cycles=500.0, **NO_FIXED
    )
    hw, _ = device(gpu, "bf16")
    in_flight = hw.sm_count[0] * hw.l1_kb[0] * 10.0
    for mhz in (0.3 * hw.max_clock_mhz[0], hw.max_clock_mhz[0]):
        expected = NBYTES * (DRAM_LATENCY_NS * 1e-9 + 500.0 / (mhz * 1e6)) / in_flight
        assert _seconds(prof, device, gpu, mhz) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("gpu", ["a100-pcie-40gb", "h100-sxm", "a10"])
def test_stream_with_enough_bytes_in_flight_runs_at_the_dram_share_down_to_where_latency_binds(gpu, device):
    prof = CalibrationProfile(
        dram_efficiency=0.72, in_flight_bytes_per_l1_kb=1000.0, core_latency_cycles=300.0, **NO_FIXED
    )
    hw, _ = device(gpu, "bf16")
    f_max = hw.max_clock_mhz[0]
    at_share = NBYTES / (hw.dram_bytes_per_s[0] * 0.72)
    assert _seconds(prof, device, gpu, f_max) == pytest.approx(at_share, rel=1e-9)
    # the clock at which the latency bound meets the DRAM share
    in_flight = hw.sm_count[0] * hw.l1_kb[0] * 1000.0
    knee_hz = 300.0 / (in_flight / (hw.dram_bytes_per_s[0] * 0.72) - DRAM_LATENCY_NS * 1e-9)
    assert _seconds(prof, device, gpu, 1.01 * knee_hz / 1e6) == pytest.approx(at_share, rel=1e-9)
    assert _seconds(prof, device, gpu, 0.5 * knee_hz / 1e6) > 1.2 * at_share


def test_a_stream_scales_with_sms_and_l1_not_with_the_dram_peak_while_latency_bound(device):
    """With the shipped-like bytes in flight at 900 MHz both the A10 and the A100 are latency-bound, so a
    stream's A10 / A100 time ratio is their ratio of SMs x L1 (108 x 192 / (72 x 128) = 2.25), below the
    ratio of their DRAM peaks (1555 / 600 = 2.59): the artifact measures 1.6-2.0 for its memory-bound
    models, where a DRAM-bound stream would put them near 2.6."""
    prof = CalibrationProfile(
        dram_efficiency=0.9, in_flight_bytes_per_l1_kb=33.5, core_latency_cycles=360.0, **NO_FIXED
    )
    a10 = _seconds(prof, device, "a10", 900.0)
    a100 = _seconds(prof, device, "a100-pcie-40gb", 900.0)
    assert a10 / a100 == pytest.approx(108 * 192 / (72 * 128), rel=1e-9)
    assert a10 > NBYTES / (600e9 * 0.9) and a100 > NBYTES / (1555e9 * 0.9)


def test_bytes_in_flight_scale_with_the_sms_l1(device):
    """Hopper's 256 KB per SM keeps 4/3 of an A100's 192 KB in flight: at the same SM count, clock and
    latency the stream is 3/4 as long."""
    prof = CalibrationProfile(
        dram_efficiency=1.0, in_flight_bytes_per_l1_kb=5.0, core_latency_cycles=300.0, **NO_FIXED
    )
    hw, _ = device("h100-sxm", "bf16")
    hw_a, _ = device("a100-pcie-40gb", "bf16")
    h = _seconds(prof, device, "h100-sxm", 1000.0) * hw.sm_count[0]
    a = _seconds(prof, device, "a100-pcie-40gb", 1000.0) * hw_a.sm_count[0]
    assert h / a == pytest.approx(192.0 / 256.0, rel=1e-9)


@pytest.mark.parametrize("gpu", ["a100-pcie-40gb", "h100-sxm", "a10"])
def test_fused_kernel_streams_at_its_share_down_to_the_knee_whatever_the_eager_bytes_in_flight(gpu, device):
    """A fused (non-eager) memory-bound kernel ignores the eager kernels' bytes in flight: it streams at
    ``fused_dram_efficiency`` down to f_max x share / headroom, then in proportion to the clock."""
    prof = CalibrationProfile(
        fused_dram_efficiency=0.6, dram_stream_headroom=1.2, in_flight_bytes_per_l1_kb=1.0, **NO_FIXED
    )
    hw, _ = device(gpu, "bf16")
    f_max = hw.max_clock_mhz[0]
    knee = f_max * 0.6 / 1.2
    at_share = NBYTES / (hw.dram_bytes_per_s[0] * 0.6)
    assert _seconds(prof, device, gpu, f_max, eager=False) == pytest.approx(at_share, rel=1e-9)
    assert _seconds(prof, device, gpu, 1.05 * knee, eager=False) == pytest.approx(at_share, rel=1e-9)
    assert _seconds(prof, device, gpu, 0.5 * knee, eager=False) == pytest.approx(2 * at_share, rel=1e-9)
    # the same bytes from eager code are bound by their few bytes in flight
    assert _seconds(prof, device, gpu, f_max) > 5 * at_share


def test_pipeline_marks_the_kernels_of_eager_rows_only():
    """HF eager code launches PyTorch's own memory-bound kernels, bound by their bytes in flight; a serving
    engine's fused kernels are not."""
    inf = {"requests": 16, "batch_size": 16, "input_tokens": 1024, "output_tokens": 0}
    eager = Workload(model="qwen2-1.5b", inference=inf, execution="eager", attention="flash")
    graphs = Workload(model="qwen2-1.5b", inference=inf, execution="graphs", attention="flash")
    fast = CalibrationProfile(in_flight_bytes_per_l1_kb=1e4)
    slow = CalibrationProfile(in_flight_bytes_per_l1_kb=5.0)
    e_fast, e_slow = (estimate(eager, "a100-pcie-40gb", profile=p)[0] for p in (fast, slow))
    g_fast, g_slow = (estimate(graphs, "a100-pcie-40gb", profile=p)[0] for p in (fast, slow))
    assert e_slow.ops["norm_act"].duration_seconds > 2 * e_fast.ops["norm_act"].duration_seconds
    assert g_slow.ops["norm_act"].duration_seconds == pytest.approx(g_fast.ops["norm_act"].duration_seconds)


def test_l1_comes_from_the_catalog_or_the_architecture():
    table = GpuTable.from_specs([get_gpu("a100-pcie-40gb"), get_gpu("a10"), get_gpu("h100-sxm")])
    np.testing.assert_array_equal(table.l1_kb, [192.0, 128.0, 256.0])
    custom = get_gpu("a10").model_copy(update={"l1_kb_per_sm": None, "architecture": "hopper"})
    assert GpuTable.from_specs([custom]).l1_kb[0] == L1_KB_BY_ARCHITECTURE["hopper"]
    unknown = custom.model_copy(update={"architecture": "future-arch"})
    assert GpuTable.from_specs([unknown]).l1_kb[0] == DEFAULT_L1_KB


def test_weight_streaming_gemm_keeps_its_share_down_to_the_knee_then_slows_with_the_clock(device):
    """A skinny GEMM streams its weights at ``gemm_dram_efficiency`` of the peak whatever the streaming
    kernels' bytes in flight, down to f_max x share / headroom, then in proportion to the clock."""
    prof = CalibrationProfile(
        gemm_dram_efficiency=0.8,
        dram_stream_headroom=1.6,
        in_flight_bytes_per_l1_kb=1.0,
        operand_feed_bytes_per_cycle=1024.0,
        **NO_FIXED,
    )
    hw, dev = device("h100-sxm", "bf16")
    k, n = 4096.0, 57344.0
    kt = one_gemm(1.0, n, k, 2.0)
    f_max = hw.max_clock_mhz[0]
    knee = f_max * 0.8 / 1.6

    def seconds(mhz: float) -> float:
        return float(kernel_timing(kt, dev, np.array([mhz]), hw, prof).t_exec[0])

    weights = 2.0 * k * n
    assert seconds(f_max) == pytest.approx(weights / (hw.dram_bytes_per_s[0] * 0.8), rel=0.01)
    assert seconds(1.05 * knee) == pytest.approx(seconds(f_max), rel=1e-6)
    assert seconds(0.5 * knee) == pytest.approx(2 * seconds(knee), rel=0.01)


def test_memory_bound_decode_slows_at_low_locked_clocks_but_not_near_max():
    """Decode at batch 1 is memory-bound: locking the clock 10 % below max costs little time, locking it
    at a third of max costs much more."""
    base = {
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "precision": "bf16",
        "inference": {"requests": 1, "batch_size": 1, "input_tokens": 128, "output_tokens": 256},
        "execution": "graphs",
    }
    t = {
        f: estimate(Workload.model_validate({**base, "frequency_mhz": f}), "h100-sxm")[0].duration_seconds
        for f in (1980, 1780, 660)
    }
    assert t[1780] == pytest.approx(t[1980], rel=0.05)
    assert t[660] > 1.3 * t[1980]


# Blackwell's paged decode attention (FlashInfer trtllm-gen, which vLLM auto-selects on SM100), isolated and
# replayed from CUDA graphs: 256 sequences, 32 query heads over 4 KV heads of 128, bf16, us by KV length
# (NVIDIA/Megatron-LM PR 6462; FlashAttention-2's decode kernel on the same GPU: 59.6 / 105.8 / 199.3 us).
TRTLLM_GEN_DECODE_B256_US = {512: 45.1, 1024: 80.7, 2048: 151.9}


def _decode_attention(kv_len: float, eager: bool = False):
    seqs, q_heads, kv_heads, head_dim = 256, 32, 4, 128
    return one_kernel(
        Op.ATTENTION,
        Phase.DECODE,
        m=q_heads // kv_heads,  # the query heads of a KV head share one tile
        n=kv_len,
        k=head_dim,
        gemm_group=seqs * kv_heads,
        flops=4.0 * seqs * q_heads * kv_len * head_dim,
        bytes=seqs * kv_len * kv_heads * head_dim * 2 * 2.0 + 2 * seqs * q_heads * head_dim * 2.0,
        precision_bytes=2.0,
        eager=eager,
    )


@pytest.mark.parametrize("kv_len", sorted(TRTLLM_GEN_DECODE_B256_US))
def test_blackwell_paged_decode_attention_streams_at_its_kernels_share(kv_len, device):
    """On a B200 a serving engine's decode attention takes within 20 % of trtllm-gen's measured time (its
    KV cache at 0.85 of the peak beside the per-wave and launch costs), where the fused kernels' share (0.50,
    the paged FlashAttention kernels of Hopper) would take ~1.6x as long; the H100's keeps that share."""
    prof = load_profile(None)
    hw, dev = device("b200", "bf16")
    kt = _decode_attention(kv_len)
    t = float(kernel_timing(kt, dev, hw.max_clock_mhz, hw, prof).t_exec[0])
    assert t * 1e6 == pytest.approx(TRTLLM_GEN_DECODE_B256_US[kv_len], rel=0.2)
    eager = float(
        kernel_timing(_decode_attention(kv_len, eager=True), dev, hw.max_clock_mhz, hw, prof).t_exec[0]
    )
    assert eager > 1.3 * t  # eager framework code runs its own attention kernels, not the engine's
    h_hw, h_dev = device("h100-sxm", "bf16")
    h_t = float(kernel_timing(kt, h_dev, h_hw.max_clock_mhz, h_hw, prof).t_exec[0])
    nbytes = float(kt.bytes[0])
    assert nbytes / h_t == pytest.approx(prof.fused_dram_efficiency * h_hw.dram_bytes_per_s[0], rel=0.15)


# vLLM's Triton selective state update at its tuned launch configurations (64 x 128 states per head and
# sequence, ngroups 8; "effective batch" = heads x sequences): the H200 with fp32 states (vllm-project/vllm
# PR 44251) and the B200 with 16-bit ones (PR 43083), microseconds per launch
STATE_UPDATE_US = {
    ("h200", 4.0, 4096): 73.64,
    ("h200", 4.0, 8192): 142.70,
    ("b200", 2.0, 8192): 67.48,
    ("b200", 2.0, 16384): 132.08,
    ("b200", 2.0, 24576): 187.26,
    ("b200", 2.0, 32768): 260.83,
    ("b200", 2.0, 49152): 381.23,
}


def _state_update(effective_batch: int, state_bytes: float, eager: bool = False):
    """One decode step's state update: every (head, sequence) state read and written whole, the head's
    64 inputs read and outputs written in bf16."""
    nbytes = effective_batch * (2.0 * 64 * 128 * state_bytes + 2.0 * 64 * 2.0)
    return one_kernel(
        Op.MAMBA_STATE, Phase.DECODE, bytes=nbytes, precision_bytes=2.0, recurrent_state=True, eager=eager
    )


@pytest.mark.parametrize("gpu,state_bytes,effective_batch", sorted(STATE_UPDATE_US))
def test_recurrent_state_update_streams_at_what_the_sms_move(gpu, state_bytes, effective_batch, device):
    """The state update is bound by the bytes per SM cycle its kernel moves (14.4: 0.78 of an H200's peak,
    0.53 of a B200's), within 10 % of the public timings, where the fused kernels' share (0.50) would take
    1.6x as long on an H200 and the copies' share (0.90) would run 1.7x too fast on a B200."""
    prof = load_profile(None)
    hw, dev = device(gpu, "bf16")
    kt = _state_update(effective_batch, state_bytes)
    t = float(kernel_timing(kt, dev, hw.max_clock_mhz, hw, prof).t_exec[0])
    assert t * 1e6 == pytest.approx(STATE_UPDATE_US[(gpu, state_bytes, effective_batch)], rel=0.1)


def test_an_h100_streams_the_state_at_the_copies_share_and_slows_with_the_sm_clock(device):
    """On an H100 its 132 SMs move more than the HBM3 delivers, so the state streams at the copies' share;
    the SM-side bound scales with the clock, so at half the clock it is what binds. Eager framework code
    (Hugging Face's Mamba-2 without its CUDA kernels) keeps the eager kernels' Little's law."""
    prof = load_profile(None).model_copy(update=NO_FIXED)
    hw, dev = device("h100-sxm", "bf16")
    kt = _state_update(8192, 4.0)
    nbytes = float(kt.bytes[0])
    fast = float(kernel_timing(kt, dev, hw.max_clock_mhz, hw, prof).t_exec[0])
    assert nbytes / fast == pytest.approx(prof.dram_efficiency * hw.dram_bytes_per_s[0], rel=0.01)
    half = float(kernel_timing(kt, dev, hw.max_clock_mhz / 2, hw, prof).t_exec[0])
    sm_bound = hw.sm_count[0] * STATE_STREAM_BYTES_PER_SM_CYCLE * hw.max_clock_mhz[0] / 2 * 1e6
    assert nbytes / half == pytest.approx(sm_bound, rel=0.01)
    eager = float(
        kernel_timing(_state_update(8192, 4.0, eager=True), dev, hw.max_clock_mhz, hw, prof).t_exec[0]
    )
    assert eager > 1.2 * fast


# CUTLASS MLA decode on a B200 (sgl-project/sglang PR 6929's benchmark, 128 heads, 256 sequences): GB/s of
# the latent cache (576 bf16 values per token) and the queries, by tokens of context
CUTLASS_MLA_B256_GBS = {4096: 4015.4, 8192: 4124.5}


@pytest.mark.parametrize("kv_len", sorted(CUTLASS_MLA_B256_GBS))
def test_blackwell_mla_decode_streams_its_latent_at_the_fused_share(kv_len, device):
    """MLA's latent decode on a B200 (16 heads per GPU at tensor-parallel 8, which vLLM pads to the
    kernel's 128) streams at the fused kernels' share, within 15 % of CUTLASS MLA's measured bandwidth,
    not at the GQA decode kernels' 0.85, which would make it ~1.6x as fast."""
    prof = load_profile(None)
    hw, dev = device("b200", "bf16")
    seqs, heads, latent = 256, 16, 576
    kt = one_kernel(
        Op.ATTENTION,
        Phase.DECODE,
        m=heads,
        n=kv_len,
        k=latent,
        gemm_group=seqs,
        flops=4.0 * seqs * heads * kv_len * latent,
        bytes=seqs * kv_len * latent * 2.0 + 2 * seqs * heads * latent * 2.0,
        precision_bytes=2.0,
        latent_attention=True,
    )
    t = float(kernel_timing(kt, dev, hw.max_clock_mhz, hw, prof).t_exec[0])
    assert float(kt.bytes[0]) / t / 1e9 == pytest.approx(CUTLASS_MLA_B256_GBS[kv_len], rel=0.15)
