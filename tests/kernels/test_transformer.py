"""Transformer kernels: MoE routing, eager attention and launch counts, micro-batches, fused vs eager attention."""

from __future__ import annotations

import numpy as np
import pytest

from energaizer import Workload, estimate
from energaizer.catalog import get_gpu, get_model
from energaizer.kernels.ops import Op, Phase
from energaizer.kernels.params import build_row_params
from energaizer.kernels.table import KernelTableBuilder
from energaizer.kernels.transformer import (
    LOGIT_PASS_BYTES,
    SAMPLING_BYTES_PER_LOGIT,
    add_inference,
    eager_elementwise_bytes,
    eager_score_traffic,
    experts_touched,
    padded_expert_rows,
)


def per_step(e, w: Workload) -> float:
    inf = w.inference
    return e.duration_seconds / (inf.requests * inf.output_tokens / inf.batch_size)


def train(batch: int, seq: int, model: str = "bert-base") -> Workload:
    return Workload(
        model=model,
        task="training",
        precision="fp32",
        training={"steps": 100, "global_batch_size": batch, "sequence_length": seq},
    )


def test_moe_cheaper_than_dense_of_same_total_size(one, llama_serving):
    moe = one(llama_serving(model="mixtral-8x7b", gpu_count=2), "h100-sxm")
    dense = one(llama_serving(model="llama-3.1-70b", gpu_count=2), "h100-sxm")
    assert moe.energy_joules < dense.energy_joules


def test_eager_attention_costs_more_than_flash_at_long_prompts(one, prefill):
    w = prefill(model="qwen2-1.5b", inference={"input_tokens": 8192})
    eager = one(w, "a100-pcie-40gb")
    flash = one(w.model_copy(update={"attention": "flash"}), "a100-pcie-40gb")
    assert eager.duration_seconds > 1.5 * flash.duration_seconds
    short = prefill(model="qwen2-1.5b", inference={"input_tokens": 128, "batch_size": 8, "requests": 8})
    ratio = (
        one(short, "a100-pcie-40gb").duration_seconds
        / one(short.model_copy(update={"attention": "flash"}), "a100-pcie-40gb").duration_seconds
    )
    assert ratio < 1.3


@pytest.mark.parametrize(
    ("prep", "fp32_softmax", "act_bytes", "kernels", "bytes_per_score"),
    [
        # Llama/Qwen2 bf16: scale (2+2), mask add (2+2), cast up (2+4), fp32 softmax (4+4), cast back (4+2)
        (2, True, 2.0, 5, 28.0),
        # BERT bf16: divide (2+2), mask add (2+2), softmax in bf16 (2+2)
        (2, False, 2.0, 3, 12.0),
        # OPT bf16 scales q, not the scores: mask add, then the three fp32-softmax kernels
        (1, True, 2.0, 4, 24.0),
        # fp32 models need no casts: OPT fp32 is a mask add and a softmax
        (1, True, 4.0, 2, 16.0),
    ],
)
def test_eager_score_traffic_hand_checked(prep, fp32_softmax, act_bytes, kernels, bytes_per_score):
    k, per_element = eager_score_traffic(
        np.array([float(prep)]), np.array([float(fp32_softmax)]), np.array([act_bytes])
    )
    assert k[0] == kernels
    assert per_element[0] == pytest.approx(bytes_per_score)


def test_catalog_follows_the_reference_code():
    assert not get_model("bert-large").eager_softmax_fp32
    assert not get_model("gpt2").eager_softmax_fp32
    assert get_model("qwen2-1.5b").eager_softmax_fp32
    assert get_model("opt-1.3b").eager_score_kernels == 1
    assert get_model("vit-large").eager_score_kernels == 1
    assert get_model("pythia-12b").eager_host_syncs
    assert not get_model("llama-3.1-8b").eager_host_syncs


def test_fp32_softmax_costs_bert_more_kernels_and_time(one):
    arch = get_model("bert-large")
    upcast = arch.model_copy(update={"eager_softmax_fp32": True})
    inf = {"requests": 32, "batch_size": 32, "input_tokens": 512, "output_tokens": 0}
    base = one(
        Workload(architecture=arch, inference=inf, attention="eager", execution="eager"), "a100-pcie-40gb"
    )
    more = one(
        Workload(architecture=upcast, inference=inf, attention="eager", execution="eager"), "a100-pcie-40gb"
    )
    assert more.kernel_launches - base.kernel_launches == 2 * arch.layers
    assert more.duration_seconds > base.duration_seconds * 1.05


def test_experts_touched_limits():
    e = np.array([128.0, 128.0, 128.0, 8.0])
    k = np.array([8.0, 8.0, 8.0, 2.0])
    t = np.array([1.0, 16.0, 10_000.0, 64.0])
    hit = experts_touched(e, k, t)
    assert hit[0] == pytest.approx(8.0)  # one token hits exactly its k experts
    assert 64.0 < hit[1] < 128.0  # 16 tokens x 8 picks overlap: ~82 distinct, not 128
    assert hit[1] == pytest.approx(128 * (1 - (1 - 8 / 128) ** 16))
    assert hit[2] == pytest.approx(128.0)
    assert hit[3] == pytest.approx(8.0)
    assert experts_touched(np.array([0.0]), np.array([0.0]), np.array([5.0]))[0] == 0.0


def test_moe_decode_step_grows_smoothly_with_batch(one, serving):
    """Doubling a small decode batch reads the experts the new tokens hit, not every expert."""
    model = "Qwen/Qwen3-235B-A22B-Instruct-2507"
    steps = []
    for b in (8, 16, 32):
        w = serving(model, b, gpus=8)
        steps.append(per_step(one(w, "h100-sxm"), w))
    assert steps[0] < steps[1] < steps[2]
    assert steps[1] / steps[0] < 1.45
    assert steps[2] / steps[1] < 1.45


def test_llama_style_blocks_launch_more_eager_kernels_per_layer(one):
    """RMSNorm in fp32, rotary and the gated MLP are many small kernels in eager PyTorch."""

    def launches_per_layer(model: str, layers: int) -> float:
        w = Workload(
            model=model,
            inference={"requests": 1, "input_tokens": 128, "output_tokens": 0},
            attention="eager",
            execution="eager",
        )
        return one(w, "a100-pcie-40gb").kernel_launches / layers

    bert = launches_per_layer("bert-large-uncased", 24)
    qwen = launches_per_layer("Qwen/Qwen2-1.5B", 28)
    assert 15 <= bert <= 30
    assert qwen - bert == pytest.approx(24, abs=3)


def test_unfused_eager_activation_adds_kernels_and_traffic(one):
    """GPT-2's gelu_new is 8 elementwise kernels over the MLP intermediate in eager PyTorch."""
    arch = get_model("gpt2")
    fused = arch.model_copy(update={"eager_activation_kernels": 1})
    inf = {"requests": 8, "batch_size": 8, "input_tokens": 512, "output_tokens": 0}
    e_new = one(Workload(architecture=arch, inference=inf, execution="eager"), "a100-pcie-40gb")
    e_fused = one(Workload(architecture=fused, inference=inf, execution="eager"), "a100-pcie-40gb")
    assert e_new.kernel_launches - e_fused.kernel_launches == 7 * 12
    assert e_new.duration_seconds > e_fused.duration_seconds
    # a serving engine fuses the activation: no difference there
    gen = {"requests": 64, "batch_size": 32, "input_tokens": 128, "output_tokens": 64}
    g_new = one(Workload(architecture=arch, inference=gen), "a100-pcie-40gb")
    g_fused = one(Workload(architecture=fused, inference=gen), "a100-pcie-40gb")
    assert g_new.duration_seconds == pytest.approx(g_fused.duration_seconds)


def test_gradient_accumulation_does_not_pad_the_last_micro_batch(one):
    """48 sequences of 384 tokens exceed one micro-batch (16k tokens): they run as 2 x 24, so the
    time per sequence stays where 40 sequences put it (a padded 2 x 42 would cost ~70 % more)."""
    t40 = one(train(40, 384), "v100-sxm2-32gb").duration_seconds / 40
    t48 = one(train(48, 384), "v100-sxm2-32gb").duration_seconds / 48
    assert t48 == pytest.approx(t40, rel=0.1)


def test_rotary_and_rms_norm_set_the_eager_launches_not_the_mlp():
    """GPT-NeoX blocks (rotary, LayerNorm, 2-matrix GELU MLP) pay the rotary kernels but not the
    RMSNorm ones: between a GPT-2-style block and a Llama-style one."""

    def launches(arch) -> float:
        w = Workload(
            architecture=arch,
            inference={"requests": 1, "input_tokens": 128, "output_tokens": 0},
            execution="eager",
        )
        (e,) = estimate(w, "a100-pcie-40gb")
        return e.kernel_launches

    pythia = get_model("pythia-12b")
    assert pythia.rotary_embeddings and not pythia.gated_mlp
    base = launches(pythia)
    learned = launches(pythia.model_copy(update={"rotary_embeddings": False}))
    rms = launches(pythia.model_copy(update={"rms_norm": True}))
    assert base - learned == pytest.approx(12 * pythia.layers, abs=1)
    assert rms - base == pytest.approx(12 * pythia.layers, abs=1)
    assert launches(get_model("gpt2")) / 12 < launches(get_model("qwen2-1.5b")) / 28


def _decode_logit_bytes_per_step(w: Workload, gpu: str = "h100-sxm") -> float:
    p = build_row_params([w], [get_gpu(gpu)], [get_model(w.model)])
    b = KernelTableBuilder()
    add_inference(b, p, np.array([0]), np.array([float(w.inference.batch_size)]))
    kt = b.build()
    sel = (kt.op == Op.LOGITS) & (kt.phase == Phase.DECODE)
    inf = w.inference
    steps = inf.requests * inf.output_tokens / inf.batch_size
    return float(np.sum(kt.bytes[sel] * kt.count[sel]) / steps)


def test_serving_engines_sort_every_sequences_logits_over_the_whole_vocabulary(serving):
    """vLLM samples with the model's top-p / top-k: a sort of each sequence's fp32 logits on every
    tensor-parallel rank (the logits are gathered), far more traffic than one pass."""
    vocab = get_model("llama-3.1-8b").vocab
    one_gpu = serving("llama-3.1-8b", 64)
    two_gpus = serving("llama-3.1-8b", 64, gpus=2)
    eager = one_gpu.model_copy(update={"execution": "eager"})
    assert _decode_logit_bytes_per_step(one_gpu) == pytest.approx(64 * vocab * SAMPLING_BYTES_PER_LOGIT)
    assert _decode_logit_bytes_per_step(two_gpus) == pytest.approx(64 * vocab * SAMPLING_BYTES_PER_LOGIT)
    assert _decode_logit_bytes_per_step(eager) == pytest.approx(64 * vocab * LOGIT_PASS_BYTES)


def test_sampling_cost_grows_with_the_vocabulary(serving):
    """Per decode step and sequence, Gemma 3's 262k vocabulary samples at about twice Llama 3's 128k."""
    big = _decode_logit_bytes_per_step(serving("google/gemma-3-12b-it", 64))
    small = _decode_logit_bytes_per_step(serving("llama-3.1-8b", 64))
    assert big / small == pytest.approx(
        get_model("google/gemma-3-12b-it").vocab / get_model("llama-3.1-8b").vocab, rel=1e-9
    )


@pytest.mark.parametrize(
    ("act_bytes", "norm", "rotary", "mul"),
    [(2.0, 32.0, 16.0, 6.0), (4.0, 20.0, 32.0, 12.0)],
)
def test_eager_elementwise_bytes_hand_checked(act_bytes, norm, rotary, mul):
    """bf16 RMSNorm: cast up 6 + square 8 + mean 4 + scale 8 + cast back 6 + weight 4 = 36 B per element,
    32 beyond the fused pass's 4; fp32 has no casts. Rotary 10a per q/k element, 8a beyond the fused
    read and write; the gate x up multiply 3a per MLP element."""
    got = eager_elementwise_bytes(np.array([act_bytes]))
    np.testing.assert_allclose([g[0] for g in got], [norm, rotary, mul])


def test_eager_qwen2_elementwise_time_matches_the_h100_profile(one):
    """HF Qwen2-1.5B, 16 x 1024 tokens on an H100: the torch.profiler list (benchmarks/results/
    h100-nvml-2026-11-22/profile) shows 53 ms of elementwise kernels per pass over tensors of 50-300 MB,
    too large for the 50 MB L2; the same pass in a serving stack (fused kernels) costs a fraction."""
    inf = {"requests": 16, "batch_size": 16, "input_tokens": 1024, "output_tokens": 0}
    eager = one(Workload(model="qwen2-1.5b", inference=inf, execution="eager"), "h100-sxm")
    fused = one(Workload(model="qwen2-1.5b", inference=inf), "h100-sxm")
    assert 40e-3 < eager.ops["norm_act"].duration_seconds < 65e-3
    assert fused.ops["norm_act"].duration_seconds < 0.4 * eager.ops["norm_act"].duration_seconds


def test_small_eager_tensors_stay_in_l2(one):
    """At 512 tokens Llama-3.1-8B's norm and rotary tensors (4-8 MB) fit the H100's L2: the elementwise
    kernels cost less per token than at 8 x 2048 tokens, where they stream from DRAM."""

    def per_token(batch: int, tokens: int) -> float:
        inf = {"requests": batch, "batch_size": batch, "input_tokens": tokens, "output_tokens": 0}
        e = one(Workload(model="llama-3.1-8b", inference=inf, execution="eager"), "h100-sxm")
        return e.ops["norm_act"].duration_seconds / (batch * tokens)

    assert per_token(1, 512) < 0.8 * per_token(8, 2048)


def test_a_checkpoint_with_mxfp4_experts_serves_them_narrow_at_any_dtype(one):
    """gpt-oss ships its routed experts in MXFP4 only: served at bf16 (the dtype a leaderboard lists),
    the experts still stream 0.5 B per weight; the same architecture without ``expert_precision`` (a
    bf16 re-export) moves and holds four times the expert bytes."""
    from energaizer.catalog import get_model

    inf = {"requests": 256, "input_tokens": 300, "output_tokens": 500, "batch_size": 64}
    served = one(Workload(model="gpt-oss-20b", precision="bf16", inference=inf), "h100-sxm")
    fp4 = one(Workload(model="gpt-oss-20b", precision="fp4", inference=inf), "h100-sxm")
    arch = get_model("gpt-oss-20b").model_copy(update={"id": "gpt-oss-20b-bf16", "expert_precision": None})
    bf16 = one(Workload(architecture=arch, precision="bf16", inference=inf), "h100-sxm")
    assert served.memory_required_gb < 0.4 * bf16.memory_required_gb
    assert served.energy_joules < 0.7 * bf16.energy_joules
    # attention and embeddings stay in the served dtype: between all-fp4 and bf16 experts
    assert fp4.memory_required_gb < served.memory_required_gb
    assert fp4.energy_joules < served.energy_joules


def _decode_table(w: Workload, gpu: str = "b200"):
    p = build_row_params([w], [get_gpu(gpu)], [get_model(w.model)])
    b = KernelTableBuilder()
    add_inference(b, p, np.array([0]), np.array([float(w.inference.batch_size)]))
    return b.build()


def test_kernels_mark_the_streams_their_own_kernels_run(serving):
    """The timing rules of a recurrent-state update (Mamba-2) and of MLA's latent decode read their kernels'
    flags: only the hybrid's state kernels stream recurrent states, only an MLA model's decode attention
    reads a shared latent (its prefill attends to decompressed keys and values), a GQA model has neither."""
    hybrid = _decode_table(serving("nemotron-nano-12b-v2", 32))
    assert np.array_equal(hybrid.recurrent_state, hybrid.op == Op.MAMBA_STATE)
    assert hybrid.recurrent_state.any() and not hybrid.latent_attention.any()
    mla = _decode_table(serving("deepseek-v3", 32, gpus=8, precision="fp8"))
    decode_attention = (mla.op == Op.ATTENTION) & (mla.phase == Phase.DECODE)
    assert np.array_equal(mla.latent_attention, decode_attention) and decode_attention.any()
    assert not mla.recurrent_state.any()
    dense = _decode_table(serving("llama-3.1-8b", 32))
    assert not (dense.recurrent_state.any() or dense.latent_attention.any())


def _combine_bytes_per_token_layer(w: Workload) -> float:
    kt = _decode_table(w, "h100-sxm")
    a = get_model(w.model)
    sel = (kt.op == Op.MOE_COMBINE) & (kt.phase == Phase.DECODE)
    inf = w.inference
    steps = inf.requests * inf.output_tokens / inf.batch_size
    return float(np.sum(kt.bytes[sel] * kt.count[sel]) / steps / inf.batch_size / a.layers)


def test_moe_combine_passes_every_slot_and_expert_parallel_ranks_write_zeros_for_the_rest(serving):
    """vLLM's fused MoE: the activation reads a slot's gate and up outputs and writes one, the sum reads
    every slot's output and writes the token's (hand-checked, Qwen3-235B: 8 slots of 1536, hidden 4096, bf16).
    Expert parallelism on one engine runs every token on every rank, writing zeros into the slots whose
    experts other ranks hold (7 of 8 on eight GPUs); tensor parallelism slices each slot instead."""
    per_slot, token = 3 * 1536 + 4096, 4096
    ep = serving("qwen3-235b-a22b", 32, gpus=8, expert_parallel=8)
    zeros = 7 / 8 * (2 * 1536 + 4096)
    assert _combine_bytes_per_token_layer(ep) == pytest.approx(2 * (8 * (per_slot + zeros) + token))
    tp = serving("qwen3-235b-a22b", 32, gpus=8)
    assert _combine_bytes_per_token_layer(tp) == pytest.approx(2 * (8 * (3 * 1536 / 8 + 4096) + token))
    dense = _decode_table(serving("llama-3.1-8b", 32), "h100-sxm")
    assert not (dense.op == Op.MOE_COMBINE).any()


def _moe_up(kt):
    sel = (kt.op == Op.MOE_UP) & (kt.phase == Phase.DECODE)
    return kt.m[sel][0], kt.gemm_group[sel][0], kt.flops[sel][0], kt.bytes[sel][0]


def test_block_fp8_experts_on_hopper_compute_their_whole_worst_case_buffer(serving):
    """vLLM 0.11's DeepGEMM path for block-scaled FP8 experts on Hopper computes tokens x k + local experts x
    127 rows in 128-row blocks whatever the routing (hand-checked: Qwen3-235B FP8 on 8 H100s, 8 sequences,
    16 local experts: 64 + 2032 -> 2,176 rows, 17 blocks); each touched expert's weights are still read once
    from DRAM (the buffer's tail reruns one expert from L2)."""
    assert padded_expert_rows(8, 8, 16, 128) == 2176
    assert padded_expert_rows(8, 8, 16, 0) == 0
    w = serving("qwen3-235b-a22b", 8, gpus=8, expert_parallel=8, precision="fp8")
    m, groups, flops, nbytes = _moe_up(_decode_table(w, "h100-sxm"))
    a = get_model(w.model)
    n, k = 2 * a.moe_expert_ffn, a.hidden
    assert (m, groups) == (128, 17)
    assert flops == pytest.approx(2 * 2176 * n * k)
    touched_weights = nbytes - 17 * 128 * (k + n)  # fp8 activations in and out, one byte each
    assert 0 < touched_weights < 16 * n * k  # at most the 16 local experts, once each
    # the same workload where no DeepGEMM pads: an A100 (no fp8 math), a B200 (FlashInfer's kernels), bf16
    # experts, per-channel fp8 experts (CUTLASS) and eager code run the routed rows only
    for other in (
        _decode_table(w, "a100-sxm4-80gb"),
        _decode_table(w, "b200"),
        _decode_table(w.model_copy(update={"precision": "bf16"}), "h100-sxm"),
        _decode_table(w.model_copy(update={"execution": "eager"}), "h100-sxm"),
    ):
        assert _moe_up(other)[0] < 128
    maverick = serving("llama-4-maverick-17b-128e", 8, gpus=8, expert_parallel=8, precision="fp8")
    assert _moe_up(_decode_table(maverick, "h100-sxm"))[0] < 128


def test_padded_fp8_experts_make_small_batches_slower_and_hungrier_than_their_routing(one, serving):
    """What the padding costs on 8 H100s at 8 sequences (ML.ENERGY v3, vLLM 0.11.1: the FP8 run is slower per
    step than the bf16 one and draws 450-530 W per GPU against 354 W): the FP8 step is no longer faster than
    the bf16 one, and its power per GPU is higher."""
    fp8 = one(serving("qwen3-235b-a22b", 8, gpus=8, expert_parallel=8, precision="fp8"), "h100-sxm")
    bf16 = one(serving("qwen3-235b-a22b", 8, gpus=8, expert_parallel=8), "h100-sxm")
    assert fp8.duration_seconds > 0.95 * bf16.duration_seconds
    assert fp8.average_power_watts > 1.1 * bf16.average_power_watts


def _prefill_lm_head(w: Workload, gpu: str = "h100-sxm") -> tuple[float, float]:
    """(FLOPs, logits pass bytes) of the prefill phase's vocabulary projection and logits over the workload."""
    p = build_row_params([w], [get_gpu(gpu)], [get_model(w.model)])
    b = KernelTableBuilder()
    add_inference(b, p, np.array([0]), np.array([float(w.inference.batch_size)]))
    kt = b.build()
    pre = kt.phase == Phase.PREFILL
    head, logits = pre & (kt.op == Op.LM_HEAD), pre & (kt.op == Op.LOGITS)
    return float(np.sum(kt.flops[head] * kt.count[head])), float(np.sum(kt.bytes[logits] * kt.count[logits]))


@pytest.mark.parametrize("output_tokens", [0, 64])
def test_prompt_logits_project_every_prompt_token_onto_the_vocabulary(output_tokens):
    """A scoring pass (a causal LM's forward(), an RLHF reference model's log-probs) runs the LM head over
    all prompt tokens; otherwise a prefill-only pass has none and a generating one projects the last token,
    which alone is sampled either way."""
    arch = get_model("qwen2-1.5b")
    inf = {"requests": 32, "input_tokens": 1024, "output_tokens": output_tokens, "batch_size": 16}
    plain = Workload(model="qwen2-1.5b", execution="eager", inference=inf)
    scored = Workload(model="qwen2-1.5b", execution="eager", inference={**inf, "prompt_logits": True})
    per_token = 2.0 * arch.hidden * arch.vocab
    passes, prompts = 2, 16
    flops, sampled = _prefill_lm_head(scored)
    assert flops == pytest.approx(passes * prompts * 1024 * per_token)
    plain_flops, plain_sampled = _prefill_lm_head(plain)
    assert plain_flops == pytest.approx(passes * prompts * per_token if output_tokens else 0.0)
    assert (
        sampled
        == plain_sampled
        == pytest.approx(passes * prompts * arch.vocab * LOGIT_PASS_BYTES if output_tokens else 0.0)
    )


def test_prompt_logits_cost_the_projection_and_need_a_vocabulary(one, prefill):
    w = prefill(model="qwen2-1.5b", inference={"input_tokens": 1024, "batch_size": 16, "requests": 16})
    scored = w.model_copy(update={"inference": w.inference.model_copy(update={"prompt_logits": True})})
    base, with_head = one(w, "h100-sxm"), one(scored, "h100-sxm")
    assert 1.05 < with_head.duration_seconds / base.duration_seconds < 1.2
    assert with_head.energy_joules > base.energy_joules
    vit = Workload(model="vit-large", inference={"output_tokens": 0, "prompt_logits": True})
    with pytest.raises(ValueError, match="prompt_logits: vit-large has no vocabulary"):
        estimate(vit, "h100-sxm")


def test_prefill_passes_split_the_prompts_evenly():
    """10 prompts at up to 8 a pass: two passes of 5 (the prompts' work, two passes' launches), not two of 8."""
    arch = get_model("qwen2-1.5b")

    def prefill_gemm_flops(requests: int) -> tuple[float, float]:
        inf = {"requests": requests, "input_tokens": 512, "output_tokens": 64, "batch_size": 8}
        w = Workload(model="qwen2-1.5b", inference=inf)
        p = build_row_params([w], [get_gpu("h100-sxm")], [arch])
        b = KernelTableBuilder()
        add_inference(b, p, np.array([0]), np.array([8.0]))
        kt = b.build()
        sel = (kt.phase == Phase.PREFILL) & np.isin(kt.op, [Op.QKV_PROJ, Op.MLP_UP, Op.LM_HEAD])
        return float(np.sum(kt.flops[sel] * kt.count[sel])), float(
            np.sum(kt.count[kt.phase == Phase.PREFILL])
        )

    (odd, odd_launches), (even, even_launches) = prefill_gemm_flops(10), prefill_gemm_flops(16)
    assert odd == pytest.approx(10 / 16 * even) and odd_launches == even_launches
