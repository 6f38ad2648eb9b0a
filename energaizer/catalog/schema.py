"""Typed catalog entries: a GPU type and a model architecture.

These pydantic models are the single source of truth for the catalog YAML files (built-in and
user-supplied) and for custom architectures given on the command line or in an AIJob.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from energaizer.catalog.memory import MemoryTechnology

Precision = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4"]
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4")


# Upper bounds of a GPU's figures: two orders of magnitude beyond any part, so that a user catalog's typo
# (1e300 GB/s) is an error naming the field, not an estimate of infinities
ABSURD_CLOCK_MHZ = 100_000.0
ABSURD_POWER_W = 1e6


class ClockPoint(BaseModel):
    """One measured point of a per-clock table (idle power or supply voltage)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    mhz: float = Field(gt=0)
    value: float = Field(ge=0, description="watts for idle-power tables, millivolts for voltage tables")


class GPUSpec(BaseModel):
    """Datasheet figures of one GPU type (per GPU, dense tensor peaks, decimal GB)."""

    # a user catalog's NaN or .inf would pass gt=0 and give a "feasible" estimate of null energy
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: str = Field(description="catalog id, lowercase, e.g. h100-sxm")
    name: str = Field(description="human name, e.g. 'NVIDIA H100 SXM5 80GB'")
    vendor: Literal["nvidia", "amd", "other"] = "nvidia"
    architecture: str = Field(description="e.g. hopper, ampere, ada, volta, turing, blackwell, cdna3")
    aliases: list[str] = Field(default_factory=list, description="other names that resolve to this id")
    gfd_products: list[str] = Field(
        default_factory=list,
        description="values of the nvidia.com/gpu.product node label (GPU Feature Discovery) for this type",
    )
    sm_count: int = Field(gt=0, le=100_000, description="SMs (NVIDIA) or CUs (AMD)")
    max_clock_mhz: float = Field(gt=0, le=ABSURD_CLOCK_MHZ, description="max boost SM clock")
    min_clock_mhz: float | None = Field(default=None, gt=0, le=ABSURD_CLOCK_MHZ)
    tensor_clock_mhz: float = Field(
        gt=0, le=ABSURD_CLOCK_MHZ, description="SM clock at which the datasheet tensor peaks hold"
    )
    memory_gb: float = Field(gt=0, le=1e6)
    memory_bw_gbs: float = Field(gt=0, le=1e7, description="DRAM/HBM bandwidth, GB/s")
    memory_type: Literal["hbm", "gddr"] = Field(default="hbm", description="HBM stacks or GDDR devices")
    memory_technology: MemoryTechnology | None = Field(
        default=None,
        description="DRAM generation (hbm2, hbm2e, hbm3, hbm3e, gddr6, gddr6x, gddr7): sets the energy per "
        "bit relative to HBM2 (energaizer.catalog.memory.py); default hbm2 for hbm, gddr6 for gddr",
    )
    l2_mb: float = Field(gt=0, le=1e6)
    l1_kb_per_sm: float | None = Field(
        default=None,
        gt=0,
        le=1e6,
        description="L1 data cache + shared memory per SM (LDS + L1 per CU on AMD), KB: the on-chip buffer "
        "an eager kernel's loads in flight land in; default by architecture "
        "(energaizer.hardware.L1_KB_BY_ARCHITECTURE)",
    )
    peak_tflops: dict[Precision, Annotated[float, Field(gt=0, le=1e8)]] = Field(
        description="dense peak TFLOP/s (TOPS for int8) at tensor_clock_mhz; fp32 = SIMT FP32. "
        "A precision missing here is not supported natively."
    )
    tdp_w: float = Field(gt=0, le=ABSURD_POWER_W)
    power_limit_min_w: float | None = Field(default=None, gt=0, le=ABSURD_POWER_W)
    power_limit_max_w: float | None = Field(default=None, gt=0, le=ABSURD_POWER_W)
    idle_power_w: float = Field(gt=0, le=ABSURD_POWER_W, description="P0 idle board power at a parked clock")
    dynamic_power_w: float | None = Field(
        default=None,
        gt=0,
        le=ABSURD_POWER_W,
        description="dynamic power scale of the die at max clock, W (defaults to tdp_w - idle_power_w); "
        "boards that share a die and max clock share it, whatever their TDP",
    )
    interconnect: str = "pcie"
    interconnect_bw_gbs: float = Field(gt=0, le=1e7, description="bidirectional GPU-to-GPU bandwidth, GB/s")
    pcie_bw_gbs: float = Field(default=64.0, gt=0, le=1e7, description="bidirectional PCIe bandwidth, GB/s")
    idle_power_table: list[ClockPoint] = Field(default_factory=list, description="idle W vs locked SM clock")
    voltage_table: list[ClockPoint] = Field(default_factory=list, description="core mV vs locked SM clock")
    hypothetical: bool = Field(default=False, description="true for what-if parts not sold as such")
    sources: dict[str, str] = Field(default_factory=dict, description="field -> citation")
    notes: str = ""

    @model_validator(mode="after")
    def _check(self) -> GPUSpec:
        if "fp32" not in self.peak_tflops:
            raise ValueError("peak_tflops must contain fp32")
        lo, hi = self.power_limit_range_w  # what a what-if (and a power-limit sweep) may set
        if lo > hi:
            raise ValueError(
                f"power_limit_min_w > power_limit_max_w (tdp_w when not set; 0.3 x tdp_w = {lo:g} W "
                "when power_limit_min_w is not set)"
            )
        if self.min_clock_mhz and self.min_clock_mhz > self.max_clock_mhz:
            raise ValueError("min_clock_mhz > max_clock_mhz")
        if self.tensor_clock_mhz > self.max_clock_mhz:
            raise ValueError(
                "tensor_clock_mhz > max_clock_mhz (the tensor peaks hold at or below the max clock)"
            )
        if self.idle_power_w >= self.tdp_w:
            raise ValueError("idle_power_w must be below tdp_w")
        if any(p.value <= 0 for p in self.voltage_table):
            raise ValueError("voltage_table values (mV) must be > 0")
        if self.memory_technology and not self.memory_technology.startswith(self.memory_type):
            raise ValueError(f"memory_technology {self.memory_technology} is not {self.memory_type} memory")
        return self

    @property
    def power_limit_default_w(self) -> float:
        return self.power_limit_max_w or self.tdp_w

    @property
    def clock_range_mhz(self) -> tuple[float, float]:
        """The SM clocks a what-if may set (no published minimum: a quarter of the max clock)."""
        return self.min_clock_mhz or 0.25 * self.max_clock_mhz, self.max_clock_mhz

    @property
    def power_limit_range_w(self) -> tuple[float, float]:
        """The power limits a what-if may set (no published minimum: 0.3 x TDP; maximum: the default)."""
        return self.power_limit_min_w or 0.3 * self.tdp_w, self.power_limit_default_w


class CNNSpec(BaseModel):
    """A convolutional network described by family and depth; layers are generated in kernels.cnn."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    family: Literal["resnet", "mobilenetv3", "mobilevit"]
    depth: int | None = Field(default=None, description="ResNet depth (18, 34, 50, 101, 152)")
    variant: str | None = Field(default=None, description="e.g. large/small for MobileNetV3")
    image_size: int = Field(default=224, gt=0)
    num_classes: int = Field(default=1000, gt=0)


class ModelArchitecture(BaseModel):
    """Transformer (decoder/encoder) or CNN architecture, enough to derive every kernel's shape."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="short alias used as catalog key, lowercase, e.g. llama-3.1-8b")
    hf_id: str | None = Field(default=None, description="Hugging Face id, e.g. meta-llama/Llama-3.1-8B")
    aliases: list[str] = Field(default_factory=list)
    family: str = ""
    arch_type: Literal["decoder", "encoder", "cnn"] = "decoder"
    params_b: float | None = Field(default=None, gt=0, description="total parameters, billions")
    layers: int | None = Field(default=None, gt=0)
    hidden: int | None = Field(default=None, gt=0)
    heads: int | None = Field(default=None, gt=0)
    kv_heads: int | None = Field(default=None, gt=0, description="defaults to heads (MHA)")
    head_dim: int | None = Field(default=None, gt=0, description="defaults to hidden / heads")
    ffn: int | None = Field(default=None, gt=0, description="dense FFN width (dense layers)")
    gated_mlp: bool = Field(default=True, description="SwiGLU/GeGLU (3 matrices) vs plain GELU MLP (2)")
    eager_activation_kernels: int = Field(
        default=1,
        ge=1,
        le=32,
        description="elementwise kernels the reference (Hugging Face) eager implementation launches for "
        "the MLP activation: 1 for a fused GELU/ReLU/SiLU, 8 for GPT-2's tanh-approximate gelu_new",
    )
    rotary_embeddings: bool | None = Field(
        default=None,
        description="rotary position embeddings applied to q and k in every layer (Llama, GPT-NeoX, GPT-J); "
        "default: the same as gated_mlp (learned positions for GPT-2/OPT/BERT, ALiBi for BLOOM: false)",
    )
    rms_norm: bool | None = Field(
        default=None, description="RMSNorm instead of LayerNorm; default: the same as gated_mlp"
    )
    eager_score_kernels: int = Field(
        default=2,
        ge=0,
        le=8,
        description="elementwise kernels the reference (Hugging Face) eager attention runs on the score "
        "matrix before the softmax: 2 for scale and mask add (Llama, Qwen, BERT; GPT-2's scale and "
        "causal where), 1 where only one of them touches the scores (OPT scales q, ViT has no mask)",
    )
    eager_host_syncs: bool = Field(
        default=False,
        description="the reference (Hugging Face) eager implementation synchronises the host with the GPU "
        "in every layer, so kernel dispatch no longer overlaps GPU work: GPT-NeoX attention in "
        "transformers 4.2x-4.3x copies its mask value from host memory each layer (torch.tensor(...).to("
        "device), a pageable copy that waits for the stream)",
    )
    eager_softmax_fp32: bool = Field(
        default=True,
        description="the eager softmax runs in fp32 and is cast back (softmax(..., dtype=float32).to(dtype): "
        "Llama, OPT, Qwen, ViT; three kernels on 16-bit scores); false where it keeps the score dtype "
        "(BERT, GPT-2)",
    )
    kv_lora_rank: int | None = Field(
        default=None,
        gt=0,
        description="multi-head latent attention (DeepSeek-V2/V3): the compressed KV latent cached per "
        "token per layer instead of K and V heads (512 for DeepSeek-V3); with qk_rope_head_dim",
    )
    qk_rope_head_dim: int | None = Field(
        default=None, gt=0, description="MLA: the decoupled rotary key dims cached beside the latent (64)"
    )
    sliding_window: int | None = Field(
        default=None, gt=0, description="tokens a sliding-window attention layer attends to (and caches)"
    )
    full_attention_every: int | None = Field(
        default=None,
        gt=0,
        description="layer pattern with sliding_window: every Nth layer attends to the whole context "
        "(Gemma 2 and gpt-oss: 2, Gemma 3: 6); empty = every layer is windowed",
    )
    attention_layers: int | None = Field(
        default=None,
        ge=0,
        description="hybrid models: the layers (blocks) with self-attention, which alone cache K and V; "
        "empty = every layer",
    )
    mlp_layers: int | None = Field(
        default=None, ge=0, description="hybrid models: the layers (blocks) with an MLP; empty = every layer"
    )
    mamba_layers: int = Field(
        default=0,
        ge=0,
        description="hybrid models: Mamba-2 mixer layers (blocks; Nemotron-H's `M`): an input projection, a "
        "causal depthwise convolution, the selective state-space scan and an output projection, with a "
        "fixed-size state per sequence instead of a KV cache",
    )
    mamba_heads: int | None = Field(default=None, gt=0, description="Mamba-2 heads (mamba_num_heads)")
    mamba_head_dim: int | None = Field(default=None, gt=0, description="Mamba-2 head width (mamba_head_dim)")
    ssm_state_size: int | None = Field(default=None, gt=0, description="Mamba-2 state per head channel (N)")
    mamba_groups: int = Field(default=1, gt=0, description="Mamba-2 B/C groups (n_groups)")
    conv_kernel: int = Field(default=4, gt=0, description="Mamba-2 causal convolution width")
    vocab: int | None = Field(default=None, gt=0)
    tied_embeddings: bool = False
    expert_precision: Precision | None = Field(
        default=None,
        description="the format the published checkpoint stores its routed experts in (gpt-oss: fp4, "
        "MXFP4): served at any workload precision, the experts' weights stay this narrow (the workload's "
        "precision is then the math and the rest of the model); empty = the workload's precision",
    )
    expert_scaling: Literal["block", "channel"] = Field(
        default="block",
        description="how the model's 8-bit expert checkpoint scales its weights: 128 x 128 blocks (DeepSeek "
        "V3, Qwen3 FP8: rescaled after every K block, vLLM's Triton / DeepGEMM fused-MoE kernels) or one "
        "scale per output channel with per-token activation scales (Llama 4 Maverick FP8, compressed-"
        "tensors: CUTLASS grouped GEMMs that apply both in the epilogue)",
    )
    moe_experts: int | None = Field(default=None, gt=0)
    moe_active_experts: int | None = Field(default=None, gt=0)
    moe_expert_ffn: int | None = Field(default=None, gt=0)
    moe_shared_ffn: int | None = Field(default=None, gt=0, description="shared-expert FFN width, if any")
    moe_layer_fraction: float = Field(default=1.0, gt=0, le=1, description="share of layers that are MoE")
    image_tokens: int | None = Field(default=None, gt=0, description="ViT: patches+cls per image")
    cnn: CNNSpec | None = None
    confidence: Literal["high", "medium", "low"] = "high"
    sources: dict[str, str] = Field(default_factory=dict)
    notes: str = ""

    @model_validator(mode="after")
    def _check(self) -> ModelArchitecture:
        if self.arch_type == "cnn":
            if self.cnn is None:
                raise ValueError("arch_type cnn needs a cnn: block")
            return self
        missing = [f for f in ("layers", "hidden", "heads") if getattr(self, f) is None]
        if missing:
            raise ValueError(f"transformer architecture needs {', '.join(missing)}")
        if self.ffn is None and self.moe_expert_ffn is None:
            raise ValueError("needs ffn (dense) or moe_expert_ffn (MoE)")
        if (self.moe_experts is None) != (self.moe_active_experts is None):
            raise ValueError("moe_experts and moe_active_experts go together")
        if self.moe_experts and self.moe_active_experts and self.moe_active_experts > self.moe_experts:
            raise ValueError("moe_active_experts > moe_experts")
        if self.arch_type == "decoder" and self.vocab is None:
            raise ValueError("decoder needs vocab")
        if self.head_dim is None and self.hidden % self.heads:  # hidden // heads would drop channels
            raise ValueError(
                f"hidden ({self.hidden}) must be a multiple of heads ({self.heads}), or give head_dim"
            )
        kv = self.kv_heads or self.heads
        if self.heads and kv and self.heads % kv:
            raise ValueError("heads must be a multiple of kv_heads")
        if self.mamba_layers and not (self.mamba_heads and self.mamba_head_dim and self.ssm_state_size):
            raise ValueError("mamba_layers need mamba_heads, mamba_head_dim and ssm_state_size")
        for name in ("attention_layers", "mlp_layers"):
            if (getattr(self, name) or 0) > self.layers:
                raise ValueError(f"{name} > layers")
        return self

    @property
    def is_moe(self) -> bool:
        return bool(self.moe_experts)

    @property
    def attention_layers_(self) -> int:
        """Layers with self-attention (all of a transformer's, some of a hybrid's)."""
        return self.layers if self.attention_layers is None else self.attention_layers

    @property
    def mlp_layers_(self) -> int:
        """Layers with an MLP or MoE block (all of a transformer's, some of a hybrid's)."""
        return self.layers if self.mlp_layers is None else self.mlp_layers

    @property
    def mamba_inner(self) -> int:
        """Mamba-2 inner width: heads x head width (0 without Mamba layers)."""
        return (self.mamba_heads or 0) * (self.mamba_head_dim or 0) if self.mamba_layers else 0

    @property
    def kv_heads_(self) -> int:
        return self.kv_heads or self.heads or 1

    @property
    def kv_elements_per_token(self) -> float:
        """Elements one layer caches per token on one GPU without tensor parallelism: K and V of every
        KV head, or MLA's latent + rotary key (one copy, replicated on every tensor-parallel rank)."""
        if self.kv_lora_rank:
            return float(self.kv_lora_rank + (self.qk_rope_head_dim or 0))
        return 2.0 * self.kv_heads_ * self.head_dim_

    @property
    def windowed_layer_fraction(self) -> float:
        """Share of layers that attend to (and cache) at most ``sliding_window`` tokens."""
        if not self.sliding_window:
            return 0.0
        return 1.0 - 1.0 / self.full_attention_every if self.full_attention_every else 1.0

    @property
    def head_dim_(self) -> int:
        if self.head_dim:
            return self.head_dim
        assert self.hidden and self.heads
        return self.hidden // self.heads
