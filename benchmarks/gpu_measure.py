#!/usr/bin/env python3
"""Measure real kernels and whole AI workloads on the local NVIDIA GPU with NVML.

This is the script behind ``benchmarks/results/h100-nvml-2026-11-22`` (collected into
``energaizer/data/holdout/energaizer_h100.csv`` by ``gpu_measure_collect.py``). It needs a CUDA
GPU, PyTorch, transformers, torchvision and nvidia-ml-py (none of them are energaizer dependencies); models are built from
their published configurations with random weights (no download), which leaves the kernels, their
shapes and counts as in the real checkpoints.

What it measures, per item: GPU energy from NVML's total-energy counter (mJ, whole board) over the
item, wall time between two CUDA synchronisations, and NVML power/SM-clock samples every 50 ms in a
separate process (mean, min clock, throttle reasons) to show whether the board ran at its boost
clock or was held back by its power limit. It never changes clocks or power limits: the board is
measured as found, and the found state (power limit, clocks) is written next to the results.

Usage (on the GPU machine):
    python benchmarks/gpu_measure.py --out DIR [--parts kernels,sweep,diag,profile,workloads] [--plan 1|2|3]
Writes DIR/workloads.csv (contract section 3 columns plus observed clocks), DIR/kernels.csv, DIR/sweep.csv,
DIR/profiles.txt|csv and DIR/device.json. Environment: SDPA_CUDNN=0 turns PyTorch's cuDNN attention
backend off, SAMPLER=none keeps only the energy counter, MEASURE_DEADLINE_S bounds the run.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing as mp
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pynvml as nvml
import torch
import torch.nn.functional as F

SOURCE = "energaizer-h100-nvml"
SAMPLE_PERIOD_S = 0.05
KERNEL_SECONDS = 1.5
DEADLINE_S = float(os.environ.get("MEASURE_DEADLINE_S", "540"))
T_START = time.monotonic()

# --------------------------------------------------------------------------- NVML sampling


def _sample_loop(conn, index: int, period: float) -> None:
    """Child process: sample NVML every period; answer 'get' with the samples so far, stop on 'stop'."""
    nvml.nvmlInit()
    h = nvml.nvmlDeviceGetHandleByIndex(index)
    name = "nvmlDeviceGetCurrentClocksEventReasons"
    reasons_fn = (
        getattr(nvml, name) if hasattr(nvml, name) else nvml.nvmlDeviceGetCurrentClocksThrottleReasons
    )
    samples: list[tuple[float, float, float, float, float, int]] = []
    while True:
        t = time.monotonic()
        try:
            p = nvml.nvmlDeviceGetPowerUsage(h) / 1000.0
            sm = nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM)
            mem = nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM)
            temp = nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)
            reasons = int(reasons_fn(h))
        except nvml.NVMLError:
            p = sm = mem = temp = float("nan")
            reasons = 0
        samples.append((t, p, sm, mem, temp, reasons))
        if conn.poll(period):
            msg = conn.recv()
            if msg == "stop":
                return
            conn.send(samples)
            samples = []


class Sampler:
    """NVML power, SM clock, memory clock, temperature and clock-event reasons every SAMPLE_PERIOD_S.

    The sampler is a separate process (SAMPLER=process, default): a sampling thread in the measured
    process competes for the GIL with host-bound work (framework dispatch) and slows it down.
    SAMPLER=none keeps only the energy counter.
    """

    def __init__(self, index: int = 0) -> None:
        self.mode = os.environ.get("SAMPLER", "process")
        self.samples: list[tuple[float, float, float, float, float, int]] = []
        if self.mode == "process":
            ctx = mp.get_context("spawn")
            self.conn, child = ctx.Pipe()
            self.proc = ctx.Process(target=_sample_loop, args=(child, index, SAMPLE_PERIOD_S), daemon=True)
            self.proc.start()

    def _collect(self) -> None:
        if self.mode == "process":
            self.conn.send("get")
            self.samples += self.conn.recv()

    def stop(self) -> None:
        if self.mode == "process":
            self.conn.send("stop")
            self.proc.join(timeout=5)

    def window(self, t0: float, t1: float) -> dict[str, float]:
        self._collect()
        rows = [s for s in self.samples if t0 <= s[0] <= t1]
        self.samples = [s for s in self.samples if s[0] > t1]
        if not rows:
            return {"samples": 0}
        pw = [r[1] for r in rows]
        sm = [r[2] for r in rows]
        reasons = 0
        for r in rows:
            reasons |= r[5]
        return {
            "samples": len(rows),
            "sampled_power_w": sum(pw) / len(pw),
            "max_power_w": max(pw),
            "sm_clock_mean_mhz": sum(sm) / len(sm),
            "sm_clock_min_mhz": min(sm),
            "mem_clock_mhz": sum(r[3] for r in rows) / len(rows),
            "temperature_max_c": max(r[4] for r in rows),
            "clock_event_reasons": reasons,
        }


@dataclass
class Meter:
    handle: object
    sampler: Sampler = field(init=False)

    def __post_init__(self) -> None:
        self.sampler = Sampler(0)

    def measure(self, fn: Callable[[], object]) -> dict[str, float]:
        """Run fn once between two synchronisations; energy from the NVML counter."""
        torch.cuda.synchronize()
        e0 = nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        t0 = time.monotonic()
        fn()
        torch.cuda.synchronize()
        t1 = time.monotonic()
        e1 = nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        out = {"energy_j": (e1 - e0) / 1000.0, "duration_s": t1 - t0}
        out["power_w"] = out["energy_j"] / out["duration_s"]
        out.update(self.sampler.window(t0, t1))
        return out


def time_left() -> float:
    return DEADLINE_S - (time.monotonic() - T_START)


# --------------------------------------------------------------------------- kernels


def kernel_cases() -> list[tuple[str, str, Callable[[], Callable[[], object]], float, float]]:
    """(name, dtype, setup -> run, flops per call, minimum DRAM bytes per call)."""
    dev = "cuda"
    bf = torch.bfloat16

    def gemm(m: int, k: int, n: int, dtype: torch.dtype, tf32: bool = False):
        def setup():
            torch.backends.cuda.matmul.allow_tf32 = tf32
            a = torch.randn(m, k, device=dev, dtype=dtype)
            b = torch.randn(k, n, device=dev, dtype=dtype)
            return lambda: torch.mm(a, b)

        return setup

    def fp8_gemm(m: int, k: int, n: int):
        def setup():
            a = torch.randn(m, k, device=dev).to(torch.float8_e4m3fn)
            b = torch.randn(n, k, device=dev).to(torch.float8_e4m3fn).t()
            one = torch.tensor(1.0, device=dev)
            return lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=bf)

        return setup

    def copy(nbytes: int):
        def setup():
            x = torch.randn(nbytes // 2, device=dev, dtype=bf)
            y = torch.empty_like(x)
            return lambda: y.copy_(x)

        return setup

    def add(nbytes: int):
        def setup():
            x = torch.randn(nbytes // 2, device=dev, dtype=bf)
            y = torch.randn_like(x)
            z = torch.empty_like(x)
            return lambda: torch.add(x, y, out=z)

        return setup

    def layer_norm(rows: int, cols: int):
        def setup():
            x = torch.randn(rows, cols, device=dev, dtype=bf)
            w = torch.ones(cols, device=dev, dtype=bf)
            return lambda: F.layer_norm(x, (cols,), w)

        return setup

    def softmax(rows: int, cols: int):
        def setup():
            x = torch.randn(rows, cols, device=dev, dtype=torch.float32)
            return lambda: torch.softmax(x, dim=-1)

        return setup

    def sdpa_prefill(b: int, h: int, s: int, d: int):
        def setup():
            q, k, v = (torch.randn(b, h, s, d, device=dev, dtype=bf) for _ in range(3))
            return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)

        return setup

    g = 1 << 30
    return [
        ("gemm_8192x8192x8192", "bf16", gemm(8192, 8192, 8192, bf), 2 * 8192**3, 3 * 8192 * 8192 * 2),
        ("gemm_4096x4096x4096", "bf16", gemm(4096, 4096, 4096, bf), 2 * 4096**3, 3 * 4096 * 4096 * 2),
        (
            "gemm_2048x4096x14336",
            "bf16",
            gemm(2048, 4096, 14336, bf),
            2 * 2048 * 4096 * 14336,
            (2048 * 4096 + 4096 * 14336 + 2048 * 14336) * 2,
        ),
        (
            "gemm_128x4096x57344",
            "bf16",
            gemm(128, 4096, 57344, bf),
            2 * 128 * 4096 * 57344,
            (128 * 4096 + 4096 * 57344 + 128 * 57344) * 2,
        ),
        (
            "gemm_16x4096x57344",
            "bf16",
            gemm(16, 4096, 57344, bf),
            2 * 16 * 4096 * 57344,
            (16 * 4096 + 4096 * 57344 + 16 * 57344) * 2,
        ),
        (
            "gemm_8192x8192x8192",
            "fp16",
            gemm(8192, 8192, 8192, torch.float16),
            2 * 8192**3,
            3 * 8192 * 8192 * 2,
        ),
        (
            "gemm_8192x8192x8192",
            "tf32",
            gemm(8192, 8192, 8192, torch.float32, tf32=True),
            2 * 8192**3,
            3 * 8192 * 8192 * 4,
        ),
        (
            "gemm_8192x8192x8192",
            "fp32",
            gemm(8192, 8192, 8192, torch.float32),
            2 * 8192**3,
            3 * 8192 * 8192 * 4,
        ),
        ("gemm_8192x8192x8192", "fp8", fp8_gemm(8192, 8192, 8192), 2 * 8192**3, 8192 * 8192 * (1 + 1 + 2)),
        ("copy_2GiB", "bf16", copy(2 * g), 0, 4 * g),
        ("add_1GiB", "bf16", add(g), g // 2, 3 * g),
        ("layer_norm_65536x4096", "bf16", layer_norm(65536, 4096), 8 * 65536 * 4096, 2 * 65536 * 4096 * 2),
        ("softmax_65536x4096", "fp32", softmax(65536, 4096), 5 * 65536 * 4096, 2 * 65536 * 4096 * 4),
        (
            "sdpa_causal_b4h32s4096d128",
            "bf16",
            sdpa_prefill(4, 32, 4096, 128),
            4 * 4 * 32 * 4096**2 * 128 / 2,
            4 * 4 * 32 * 4096 * 128 * 2,
        ),
        _sdpa_decode_case(64, 32, 8, 4096, 128),
    ]


def timed_calls(meter: Meter, fn: Callable[[], object], reps: int) -> tuple[dict[str, float], float]:
    """NVML measurement of reps back-to-back calls, and their GPU time (ms) from CUDA events."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def loop() -> None:
        start.record()
        for _ in range(reps):
            fn()
        end.record()

    m = meter.measure(loop)
    return m, start.elapsed_time(end)


def sweep_cases() -> list[tuple[str, str, Callable[[], Callable[[], object]], float, float]]:
    """Size sweeps: a bf16 add from 64 KiB to 1 GiB per operand, a bf16 GEMM (K 4096, N 14336) from
    M = 1 to 8192, and decode attention from 256 to 8192 tokens of context. Each case replays a CUDA
    graph of GRAPH_CALLS launches, so host dispatch stays out."""
    cases = []
    for exp in range(16, 31, 2):
        nbytes = 1 << exp
        cases.append((f"add_{nbytes}B", "bf16", _graphed(_add_setup(nbytes)), nbytes / 2, 3 * nbytes))
    for m in (1, 8, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192):
        k, n = 4096, 14336
        cases.append(
            (
                f"gemm_{m}x{k}x{n}",
                "bf16",
                _graphed(_mm_setup(m, k, n)),
                2.0 * m * k * n,
                (m * k + k * n + m * n) * 2,
            )
        )
    # Decode attention at the same KV bytes per call (1 GiB) from 256 to 8192 tokens of context: does the
    # stream rate fall at the short contexts of chat serving (a fixed cost per sequence and KV head)?
    for ctx in (256, 512, 1024, 2048, 4096, 8192):
        name, dtype, setup, flops, nbytes = _sdpa_decode_case(262144 // ctx, 32, 8, ctx, 128)
        cases.append((name, dtype, _graphed(setup), flops, nbytes))
    return cases


def _sdpa_decode_case(
    b: int, h: int, kvh: int, s: int, d: int
) -> tuple[str, str, Callable[[], Callable[[], object]], float, float]:
    """One decode step of fused attention: b sequences, h query heads over kvh KV heads (GQA), s cached
    tokens of head size d; its FLOPs and its compulsory bytes (the K and V cache, bf16)."""

    def setup():
        q = torch.randn(b, h, 1, d, device="cuda", dtype=torch.bfloat16)
        k, v = (torch.randn(b, kvh, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(2))
        return lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True)

    return (
        f"sdpa_decode_b{b}h{h}kv{kvh}s{s}d{d}",
        "bf16",
        setup,
        4 * b * h * s * d,
        2 * b * kvh * s * d * 2,
    )


GRAPH_CALLS = 50


def _add_setup(nbytes: int) -> Callable[[], Callable[[], object]]:
    def setup():
        x = torch.randn(nbytes // 2, device="cuda", dtype=torch.bfloat16)
        y, z = torch.randn_like(x), torch.empty_like(x)
        return lambda: torch.add(x, y, out=z)

    return setup


def _mm_setup(m: int, k: int, n: int) -> Callable[[], Callable[[], object]]:
    def setup():
        a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(k, n, device="cuda", dtype=torch.bfloat16)
        c = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
        return lambda: torch.mm(a, b, out=c)

    return setup


def _graphed(setup: Callable[[], Callable[[], object]]) -> Callable[[], Callable[[], object]]:
    """A setup whose run replays GRAPH_CALLS captured launches (per-call figures divide by calls_per_run)."""

    def graphed_setup():
        fn = setup()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(GRAPH_CALLS):
                fn()

        def replay() -> None:
            graph.replay()

        replay.calls_per_run = GRAPH_CALLS  # type: ignore[attr-defined]
        return replay

    return graphed_setup


def run_kernels(meter: Meter, out_dir: str, idle: dict[str, float], sweep: bool = False) -> list[dict]:
    rows: list[dict] = []
    path = os.path.join(out_dir, "sweep.csv" if sweep else "kernels.csv")
    for name, dtype, setup, flops, nbytes in sweep_cases() if sweep else kernel_cases():
        if time_left() < 60:
            print(f"deadline: skipping kernel {name}", flush=True)
            continue
        try:
            fn = setup()
            for _ in range(3):
                fn()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            n = 0
            while time.perf_counter() - t0 < 0.3:
                fn()
                n += 1
            torch.cuda.synchronize()
            per_call = (time.perf_counter() - t0) / n
            reps = max(5, int(KERNEL_SECONDS / per_call))
            m, gpu_ms = timed_calls(meter, fn, reps)
            reps *= getattr(fn, "calls_per_run", 1)
            t_call = gpu_ms / 1000.0 / reps
            row = {
                "kernel": name,
                "dtype": dtype,
                "calls": reps,
                "time_per_call_us": t_call * 1e6,
                "energy_per_call_mj": m["energy_j"] / reps * 1000.0,
                "average_power_w": m["power_w"],
                "idle_power_w": idle["power_w"],
                "achieved_tflops": flops / t_call / 1e12 if flops else 0.0,
                "achieved_dram_gbps": nbytes / t_call / 1e9,
                "flops_per_call": flops,
                "min_dram_bytes_per_call": nbytes,
                **{
                    k: m[k]
                    for k in (
                        "sm_clock_mean_mhz",
                        "sm_clock_min_mhz",
                        "mem_clock_mhz",
                        "max_power_w",
                        "temperature_max_c",
                        "clock_event_reasons",
                    )
                    if k in m
                },
            }
            rows.append(row)
            print(
                f"kernel {name:34s} {dtype:5s} {t_call * 1e6:10.1f} us {m['power_w']:6.0f} W "
                f"{row['achieved_tflops']:7.1f} TF/s {row['achieved_dram_gbps']:7.0f} GB/s "
                f"sm {m.get('sm_clock_mean_mhz', 0):5.0f} MHz",
                flush=True,
            )
        except Exception as exc:  # one failing case must not lose the others
            print(f"kernel {name} {dtype} FAILED: {type(exc).__name__}: {exc}", flush=True)
        finally:
            fn = None
            torch.cuda.empty_cache()
        write_csv(path, rows)
    return rows


# --------------------------------------------------------------------------- whole workloads


# HF configuration class and the published shapes of each measured model:
# (class, hidden, ffn, layers, heads, kv heads, vocab, tied embeddings, extra keywords).
HF_SHAPES: dict[str, tuple] = {
    "llama-3.1-8b": ("LlamaConfig", 4096, 14336, 32, 32, 8, 128256, False, {"rope_theta": 500000.0}),
    "qwen3-8b": ("Qwen3Config", 4096, 12288, 36, 32, 8, 151936, False, {"head_dim": 128}),
    "mistral-7b-v0.3": ("MistralConfig", 4096, 14336, 32, 32, 8, 32768, False, {"sliding_window": None}),
    "qwen2-1.5b": ("Qwen2Config", 1536, 8960, 28, 12, 2, 151936, True, {}),
}


def hf_config(model: str):
    import transformers as tf

    if model in HF_SHAPES:
        cls, hidden, ffn, layers, heads, kv, vocab, tied, extra = HF_SHAPES[model]
        return getattr(tf, cls)(
            hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers, num_attention_heads=heads,
            num_key_value_heads=kv, vocab_size=vocab, max_position_embeddings=8192, tie_word_embeddings=tied,
            **extra,
        )  # fmt: skip
    if model == "opt-1.3b":
        return tf.OPTConfig(
            hidden_size=2048, ffn_dim=8192, num_hidden_layers=24, num_attention_heads=32, vocab_size=50272,
            word_embed_proj_dim=2048, max_position_embeddings=2048,
        )  # fmt: skip
    if model == "gpt2":
        return tf.GPT2Config()
    large = {
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
    }
    if model == "bert-large":
        return tf.BertConfig(vocab_size=30522, **large)
    if model == "vit-large":
        return tf.ViTConfig(image_size=224, patch_size=16, **large)
    raise KeyError(model)


VISION = ("resnet-50", "vit-large")  # no vocabulary: no prompt logits
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, "tf32": torch.float32}


def build_model(model: str, precision: str, attn: str, training: bool):
    import transformers as tf

    dtype = torch.float32 if training else DTYPES[precision]
    if model in ("resnet-50",):
        import torchvision

        with torch.device("cuda"):
            net = torchvision.models.resnet50()
        return net.to(dtype=dtype)
    cfg = hf_config(model)
    cls = {"bert-large": tf.BertForMaskedLM, "vit-large": tf.ViTForImageClassification}.get(
        model, tf.AutoModelForCausalLM
    )
    make = cls.from_config if cls is tf.AutoModelForCausalLM else cls._from_config
    with torch.device("cuda"):
        try:
            net = make(cfg, dtype=dtype, attn_implementation=attn)
        except TypeError:  # transformers < 4.56 names it torch_dtype
            net = make(cfg, torch_dtype=dtype, attn_implementation=attn)
    return net.to(device="cuda", dtype=dtype)


@dataclass
class Workload:
    model: str
    precision: str
    task: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    batch_size: int = 0
    steps: int = 0
    global_batch_size: int = 0
    sequence_length: int = 0
    attention: str = "flash"

    def contract_row(self) -> dict:
        inf = self.task == "inference"
        return {
            "source": SOURCE,
            "source_ref": "benchmarks/gpu_measure.py",
            "model": self.model,
            "gpu": "h100-sxm",
            "gpu_count": 1,
            "precision": self.precision,
            "task": self.task,
            "requests": self.requests if inf else "",
            "input_tokens": self.input_tokens if inf else "",
            "output_tokens": self.output_tokens if inf else "",
            "batch_size": self.batch_size if inf else "",
            "tokens": "",
            "steps": "" if inf else self.steps,
            "global_batch_size": "" if inf else self.global_batch_size,
            "sequence_length": "" if inf or not self.sequence_length else self.sequence_length,
            "frequency_mhz": "",
            "power_limit_w": "",
            "attention": self.attention if self.model != "resnet-50" else "",
            "execution": "eager",
            # build_model's head classes project every prompt token of a prefill-only pass
            "prompt_logits": "1" if inf and not self.output_tokens and self.model not in VISION else "",
        }


PLAN: list[Workload] = [
    Workload("llama-3.1-8b", "bf16", "inference", 1, 512, 256, 1),
    Workload("llama-3.1-8b", "bf16", "inference", 8, 512, 256, 8),
    Workload("llama-3.1-8b", "bf16", "inference", 32, 512, 256, 32),
    Workload("llama-3.1-8b", "bf16", "inference", 128, 256, 128, 128),
    Workload("llama-3.1-8b", "bf16", "inference", 64, 2048, 0, 8),
    Workload("qwen3-8b", "bf16", "inference", 16, 1024, 256, 16),
    Workload("mistral-7b-v0.3", "bf16", "inference", 4, 2048, 256, 4),
    Workload("qwen2-1.5b", "bf16", "inference", 16, 256, 256, 16),
    Workload("gpt2", "bf16", "inference", 32, 128, 256, 32),
    Workload("opt-1.3b", "fp32", "inference", 48, 1024, 0, 1, attention="eager"),
    Workload("opt-1.3b", "fp16", "inference", 64, 1024, 0, 8, attention="eager"),
    Workload("bert-large", "bf16", "training", steps=60, global_batch_size=16, sequence_length=512),
    Workload("gpt2", "bf16", "training", steps=60, global_batch_size=16, sequence_length=1024),
    Workload("qwen2-1.5b", "bf16", "training", steps=20, global_batch_size=4, sequence_length=2048),
    Workload("resnet-50", "bf16", "training", steps=100, global_batch_size=128),
    Workload("resnet-50", "bf16", "inference", 20480, 1, 0, 256),
    Workload("vit-large", "bf16", "inference", 2560, 1, 0, 64),
]


# Second pass: the host-bound generate rows again with the sampler out of process, more prefill shapes,
# fp32/tf32 paths and a smaller training batch.
PLAN_2: list[Workload] = [
    Workload("gpt2", "bf16", "inference", 32, 128, 256, 32),
    Workload("qwen2-1.5b", "bf16", "inference", 16, 256, 256, 16),
    Workload("qwen2-1.5b", "bf16", "inference", 256, 1024, 0, 16),
    Workload("llama-3.1-8b", "bf16", "inference", 1, 512, 256, 1),
    Workload("llama-3.1-8b", "bf16", "inference", 32, 512, 256, 32),
    Workload("llama-3.1-8b", "bf16", "inference", 128, 256, 128, 128),
    Workload("llama-3.1-8b", "bf16", "inference", 64, 512, 0, 1),
    Workload("llama-3.1-8b", "bf16", "inference", 256, 512, 0, 32),
    Workload("bert-large", "bf16", "inference", 1024, 384, 0, 32),
    Workload("opt-1.3b", "tf32", "inference", 48, 1024, 0, 1, attention="eager"),
    Workload("gpt2", "bf16", "training", steps=60, global_batch_size=8, sequence_length=1024),
    Workload("resnet-50", "fp32", "training", steps=40, global_batch_size=128),
]
# Third pass: every generate row with PyTorch's cuDNN attention backend off. With it on (PyTorch 2.11
# prefers it on Hopper), each new KV length in a decode loop builds a new cuDNN plan (~60 ms per step
# here), which swamps the kernels; run with SDPA_CUDNN=0 (flash / memory-efficient backends).
PLAN_3: list[Workload] = list(
    {repr(w): w for w in PLAN + PLAN_2 if w.task == "inference" and w.output_tokens}.values()
)
PLANS = {"1": PLAN, "2": PLAN_2, "3": PLAN_3}


def diagnose_host(meter: Meter, out_dir: str) -> None:
    """Host-side costs on this machine: one tiny kernel's dispatch, and where HF generate spends a step."""
    import cProfile
    import io
    import pstats

    x = torch.ones(16, device="cuda")
    for _ in range(100):
        torch.add(x, 1)
    torch.cuda.synchronize()
    n = 20000
    t0 = time.monotonic()
    for _ in range(n):
        torch.add(x, 1)
    torch.cuda.synchronize()
    print(f"diag: torch.add dispatch {(time.monotonic() - t0) / n * 1e6:.1f} us/op", flush=True)
    net = build_model("gpt2", "bf16", "sdpa", False).eval()
    cudnn_default = torch.backends.cuda.cudnn_sdp_enabled()
    for cudnn, prompt in ((True, 300), (False, 600)):
        torch.backends.cuda.enable_cudnn_sdp(cudnn)
        ids = torch.randint(100, 50000, (1, prompt), device="cuda")
        mask = torch.ones_like(ids)

        def gen(new: int, ids: torch.Tensor = ids, mask: torch.Tensor = mask) -> None:
            with torch.inference_mode():
                net.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=new,
                    min_new_tokens=new,
                    do_sample=False,
                    pad_token_id=0,
                )

        gen(8)
        for label in ("new KV lengths", "same lengths again"):
            m = meter.measure(lambda: gen(128))
            print(
                f"diag: gpt2 generate b1 128 tokens, cuDNN SDPA {cudnn}, {label}: "
                f"{m['duration_s'] / 128 * 1e3:.2f} ms/token",
                flush=True,
            )
    torch.backends.cuda.enable_cudnn_sdp(cudnn_default)
    ids = torch.randint(100, 50000, (1, 32), device="cuda")
    mask = torch.ones_like(ids)

    def manual(new: int) -> None:
        with torch.inference_mode():
            out = net(input_ids=ids, attention_mask=mask, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[:, -1:].argmax(-1)
            for _ in range(new - 1):
                out = net(input_ids=nxt, past_key_values=past, use_cache=True)
                past = out.past_key_values
                nxt = out.logits[:, -1:].argmax(-1)

    manual(8)
    m = meter.measure(lambda: manual(128))
    print(
        f"diag: gpt2 manual decode loop b1 128 tokens: {m['duration_s'] / 128 * 1e3:.2f} ms/token", flush=True
    )
    prof = cProfile.Profile()
    prof.enable()
    with torch.inference_mode():
        net.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=32,
            min_new_tokens=32,
            do_sample=False,
            pad_token_id=0,
        )
    torch.cuda.synchronize()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(40)
    with open(os.path.join(out_dir, "generate_profile.txt"), "w") as fh:
        fh.write(buf.getvalue())
    pstats.Stats(prof).sort_stats("tottime").print_stats(12)
    net = None
    torch.cuda.empty_cache()


# Kernel-level profiles (torch.profiler): which kernels a step runs and for how long, to check the
# kernel decomposition; a shortened copy of each workload (the same shapes, fewer repeats).
PROFILE_PLAN: list[Workload] = [
    Workload("llama-3.1-8b", "bf16", "inference", 2, 512, 0, 1),
    Workload("qwen2-1.5b", "bf16", "inference", 16, 1024, 0, 16),
    Workload("opt-1.3b", "tf32", "inference", 2, 1024, 0, 1, attention="eager"),
    Workload("opt-1.3b", "fp16", "inference", 8, 1024, 0, 8, attention="eager"),
    Workload("bert-large", "bf16", "training", steps=2, global_batch_size=16, sequence_length=512),
    Workload("gpt2", "bf16", "training", steps=3, global_batch_size=8, sequence_length=1024),
    Workload("resnet-50", "bf16", "training", steps=3, global_batch_size=128),
    Workload("resnet-50", "fp32", "training", steps=2, global_batch_size=128),
    Workload("resnet-50", "bf16", "inference", 512, 1, 0, 256),
    Workload("vit-large", "bf16", "inference", 128, 1, 0, 64),
]


def profile_workloads(out_dir: str) -> None:
    """Per-kernel GPU time of shortened workloads; writes DIR/profiles.txt and DIR/profiles.csv."""
    from torch.profiler import ProfilerActivity, profile

    text: list[str] = []
    rows: list[dict] = []
    for w in PROFILE_PLAN:
        if time_left() < 30:
            break
        try:
            training = w.task == "training"
            attn = "eager" if w.attention == "eager" else "sdpa"
            net = build_model(w.model, w.precision, attn, training)
            vocab = getattr(getattr(net, "config", None), "vocab_size", 1000)
            allow_tf32 = w.precision != "fp32"
            torch.backends.cuda.matmul.allow_tf32 = allow_tf32
            torch.backends.cudnn.allow_tf32 = allow_tf32
            torch.backends.cudnn.benchmark = training
            warm, run = (training_runner if training else inference_runner)(net, w, vocab)
            warm()
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                t0 = time.monotonic()
                run()
                torch.cuda.synchronize()
                wall = time.monotonic() - t0
            kernels = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
            busy = sum(e.self_device_time_total for e in kernels) / 1e6
            label = (
                f"{w.model} {w.task} {w.precision} req={w.requests} in={w.input_tokens} b={w.batch_size} "
                f"steps={w.steps} gb={w.global_batch_size} seq={w.sequence_length}"
            )
            header = (
                f"== {label}: wall {wall * 1e3:.1f} ms, kernel time {busy * 1e3:.1f} ms, "
                f"{sum(e.count for e in kernels)} kernels"
            )
            text.append(header)
            print(header, flush=True)
            for e in sorted(kernels, key=lambda e: -e.self_device_time_total)[:25]:
                t_ms = e.self_device_time_total / 1e3
                text.append(f"  {t_ms:9.2f} ms {e.count:6d}x {t_ms / e.count * 1e3:9.1f} us  {e.key[:110]}")
                rows.append(
                    {
                        "workload": label,
                        "kernel": e.key[:200],
                        "count": e.count,
                        "total_ms": t_ms,
                        "wall_ms": wall * 1e3,
                        "busy_ms": busy * 1e3,
                    }
                )
        except Exception as exc:
            print(f"profile {w} FAILED: {type(exc).__name__}: {exc}", flush=True)
        finally:
            net = warm = run = None
            torch.cuda.empty_cache()
        with open(os.path.join(out_dir, "profiles.txt"), "w") as fh:
            fh.write("\n".join(text) + "\n")
        write_csv(os.path.join(out_dir, "profiles.csv"), rows)


def inference_runner(net, w: Workload, vocab: int) -> tuple[Callable[[], object], Callable[[], object]]:
    """(warm-up, measured run) for an inference workload: batches of w.batch_size run one after another."""
    batches = math.ceil(w.requests / w.batch_size)
    image = w.model in ("resnet-50", "vit-large")
    dtype = DTYPES[w.precision]
    net.eval()
    if image:
        x = torch.randn(w.batch_size, 3, 224, 224, device="cuda", dtype=dtype)

        def once(n: int) -> None:
            with torch.inference_mode():
                for _ in range(n):
                    net(x) if w.model == "resnet-50" else net(pixel_values=x)

        return (lambda: once(2)), (lambda: once(batches))
    ids = torch.randint(100, vocab - 100, (w.batch_size, w.input_tokens), device="cuda")
    mask = torch.ones_like(ids)
    if w.output_tokens == 0:

        def forward(n: int) -> None:
            with torch.inference_mode():
                for _ in range(n):
                    net(input_ids=ids, attention_mask=mask)

        return (lambda: forward(2)), (lambda: forward(batches))

    def generate(n: int, new: int) -> None:
        with torch.inference_mode():
            for _ in range(n):
                out = net.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=new,
                    min_new_tokens=new,
                    do_sample=False,
                    pad_token_id=0,
                )
                assert out.shape[1] == w.input_tokens + new, out.shape

    return (lambda: generate(1, 8)), (lambda: generate(batches, w.output_tokens))


def training_runner(net, w: Workload, vocab: int) -> tuple[Callable[[], object], Callable[[], object]]:
    net.train()
    dtype = DTYPES[w.precision]
    if w.model == "resnet-50":
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        x = torch.randn(w.global_batch_size, 3, 224, 224, device="cuda")
        y = torch.randint(0, 1000, (w.global_batch_size,), device="cuda")

        def loss_fn():
            return F.cross_entropy(net(x), y)
    else:
        opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
        ids = torch.randint(100, vocab - 100, (w.global_batch_size, w.sequence_length), device="cuda")

        def loss_fn():
            return net(input_ids=ids, labels=ids).loss

    def steps(n: int) -> None:
        for _ in range(n):
            with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                loss = loss_fn()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    return (lambda: steps(3)), (lambda: steps(w.steps))


def run_workloads(meter: Meter, out_dir: str, idle: dict[str, float], plan: list[Workload]) -> list[dict]:
    rows: list[dict] = []
    path = os.path.join(out_dir, "workloads.csv")
    cache: dict[tuple, object] = {}
    for w in plan:
        if time_left() < 45:
            print(f"deadline: skipping {w}", flush=True)
            continue
        t_start = time.perf_counter()
        try:
            training = w.task == "training"
            attn = "eager" if w.attention == "eager" else "sdpa"
            key = (w.model, w.precision, attn, training)
            if key not in cache:
                cache.clear()
                torch.cuda.empty_cache()
                cache[key] = build_model(w.model, w.precision, attn, training)
            net = cache[key]
            vocab = getattr(getattr(net, "config", None), "vocab_size", 1000)
            allow_tf32 = w.precision != "fp32"
            torch.backends.cuda.matmul.allow_tf32 = allow_tf32
            torch.backends.cudnn.allow_tf32 = allow_tf32
            torch.backends.cudnn.benchmark = training
            runner = training_runner if training else inference_runner
            warm, run = runner(net, w, vocab)
            warm()
            m = meter.measure(run)
            row = w.contract_row()
            row["measured_energy_joules"] = m["energy_j"]
            row["measured_duration_seconds"] = m["duration_s"]
            row["measured_average_power_watts"] = m["power_w"]
            row["idle_power_w"] = idle["power_w"]
            row["sdpa_cudnn"] = int(torch.backends.cuda.cudnn_sdp_enabled())
            for k in (
                "sampled_power_w",
                "max_power_w",
                "sm_clock_mean_mhz",
                "sm_clock_min_mhz",
                "mem_clock_mhz",
                "temperature_max_c",
                "clock_event_reasons",
            ):
                row[k] = m.get(k, "")
            rows.append(row)
            print(
                f"workload {w.model:16s} {w.task:9s} {w.precision:4s} req={w.requests} in={w.input_tokens} "
                f"out={w.output_tokens} b={w.batch_size} steps={w.steps} gb={w.global_batch_size} "
                f"seq={w.sequence_length}: {m['duration_s']:7.2f} s {m['energy_j']:9.1f} J {m['power_w']:6.1f} W "
                f"sm {m.get('sm_clock_mean_mhz', 0):5.0f} MHz (item {time.perf_counter() - t_start:5.1f} s)",
                flush=True,
            )
        except Exception as exc:
            print(f"workload {w} FAILED: {type(exc).__name__}: {exc}", flush=True)
            cache.clear()
        finally:
            warm = run = None
            torch.cuda.empty_cache()
        write_csv(path, rows)
    return rows


# --------------------------------------------------------------------------- main


def write_csv(path: str, rows: list[dict]) -> None:
    if not rows:
        return
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=keys)
        wr.writeheader()
        wr.writerows(rows)


def device_info(h) -> dict:
    def safe(fn, *a):
        try:
            v = fn(*a)
            return v.decode() if isinstance(v, bytes) else v
        except Exception as exc:  # not every query exists on every board
            return f"n/a ({type(exc).__name__})"

    import transformers

    return {
        "name": safe(nvml.nvmlDeviceGetName, h),
        "driver": safe(nvml.nvmlSystemGetDriverVersion),
        "power_limit_w": safe(nvml.nvmlDeviceGetEnforcedPowerLimit, h) / 1000.0
        if isinstance(safe(nvml.nvmlDeviceGetEnforcedPowerLimit, h), int)
        else None,
        "default_power_limit_w": safe(nvml.nvmlDeviceGetPowerManagementDefaultLimit, h),
        "max_sm_clock_mhz": safe(nvml.nvmlDeviceGetMaxClockInfo, h, nvml.NVML_CLOCK_SM),
        "max_mem_clock_mhz": safe(nvml.nvmlDeviceGetMaxClockInfo, h, nvml.NVML_CLOCK_MEM),
        "application_sm_clock_mhz": safe(nvml.nvmlDeviceGetApplicationsClock, h, nvml.NVML_CLOCK_SM),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "sm_count": torch.cuda.get_device_properties(0).multi_processor_count,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--parts",
        default="kernels,diag,workloads",
        help="comma-separated: kernels, sweep, diag, profile, workloads",
    )
    ap.add_argument(
        "--plan", choices=sorted(PLANS), default="1", help="workload list (1: first pass, 2: second)"
    )
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    nvml.nvmlInit()
    h = nvml.nvmlDeviceGetHandleByIndex(0)
    torch.cuda.init()
    if os.environ.get("SDPA_CUDNN", "1") == "0":
        torch.backends.cuda.enable_cudnn_sdp(False)
    meter = Meter(h)
    info = device_info(h)
    print(json.dumps(info), flush=True)
    idle = meter.measure(lambda: time.sleep(3.0))
    info["idle"] = idle
    print(f"idle: {idle['power_w']:.1f} W, sm {idle.get('sm_clock_mean_mhz', 0):.0f} MHz", flush=True)
    with open(os.path.join(args.out, "device.json"), "w") as fh:
        json.dump(info, fh, indent=1)
    parts = set(args.parts.split(","))
    if "kernels" in parts:
        run_kernels(meter, args.out, idle)
    if "sweep" in parts:
        run_kernels(meter, args.out, idle, sweep=True)
    if "diag" in parts:
        diagnose_host(meter, args.out)
    if "profile" in parts:
        profile_workloads(args.out)
    if "workloads" in parts:
        run_workloads(meter, args.out, idle, PLANS[args.plan])
    meter.sampler.stop()
    print(f"done in {time.monotonic() - T_START:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
