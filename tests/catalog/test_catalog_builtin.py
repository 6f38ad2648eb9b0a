"""The built-in GPU and model catalogs: completeness, sourcing, dense peaks, aliases."""

from __future__ import annotations

import pytest

from energaizer import catalog
from energaizer.catalog import loader
from energaizer.catalog.schema import PRECISIONS, GPUSpec, ModelArchitecture
from energaizer.errors import InvalidInputError, UnknownNameError

CONTRACT_GPUS = [
    "v100-sxm2-32gb",
    "t4",
    "a10",
    "a10g",
    "l4",
    "l40s",
    "a100-pcie-40gb",
    "a100-sxm4-40gb",
    "a100-sxm4-80gb",
    "a100-pcie-80gb",
    "h100-sxm",
    "h100-pcie",
    "h100-nvl",
    "h200",
    "b200",
    "mi300x",
]
SOURCED_FIELDS = (
    "sm_count",
    "max_clock_mhz",
    "tensor_clock_mhz",
    "memory_gb",
    "memory_bw_gbs",
    "l2_mb",
    "peak_tflops",
    "tdp_w",
    "idle_power_w",
    "interconnect_bw_gbs",
)


def test_contract_gpu_ids_present() -> None:
    ids = [g.id for g in catalog.list_gpus()]
    assert len(ids) == len(set(ids))
    assert set(CONTRACT_GPUS) <= set(ids)
    assert {"gb200", "mi250x"} <= set(ids)
    for gpu_id in CONTRACT_GPUS:
        assert catalog.get_gpu(gpu_id).id == gpu_id


def test_every_builtin_entry_revalidates() -> None:
    for gpu in catalog.list_gpus():
        assert GPUSpec.model_validate(gpu.model_dump()) == gpu
        assert gpu.id == gpu.id.lower()
    for model in catalog.list_models():
        assert ModelArchitecture.model_validate(model.model_dump()) == model
        assert model.id == model.id.lower()
        assert model.hf_id or model.aliases, model.id
        assert model.params_b is not None, model.id


@pytest.mark.parametrize("gpu", catalog.list_gpus(), ids=lambda g: g.id)
def test_gpu_fields_are_sourced_and_consistent(gpu: GPUSpec) -> None:
    missing = [f for f in SOURCED_FIELDS if f not in gpu.sources]
    assert not missing, f"{gpu.id}: no source for {missing}"
    for field_name in ("power_limit_min_w", "power_limit_max_w", "min_clock_mhz"):
        if getattr(gpu, field_name) is not None:
            assert field_name in gpu.sources, f"{gpu.id}: {field_name}"
    derived = [f for f, s in gpu.sources.items() if s.startswith("derived")]
    if derived:
        assert gpu.notes, f"{gpu.id}: derived fields {derived} need notes"
    assert gpu.tensor_clock_mhz <= gpu.max_clock_mhz
    assert gpu.idle_power_w < gpu.tdp_w
    assert gpu.gfd_products
    peaks = gpu.peak_tflops
    assert set(peaks) <= set(PRECISIONS)
    if "bf16" in peaks or "fp16" in peaks:
        assert max(peaks.get("bf16", 0), peaks.get("fp16", 0)) > peaks["fp32"]
    if "fp8" in peaks:
        assert peaks["fp8"] == pytest.approx(2 * peaks["fp16"], rel=0.02)  # L40S DS: 362.05 vs 733
    if "fp4" in peaks:
        assert peaks["fp4"] == pytest.approx(2 * peaks["fp8"], rel=0.01)


def test_tensor_peaks_are_dense_not_sparse() -> None:
    assert catalog.get_gpu("h100-sxm").peak_tflops["bf16"] == pytest.approx(989.4)
    assert catalog.get_gpu("h100-sxm").peak_tflops["fp8"] == pytest.approx(1978.9)
    assert catalog.get_gpu("a100").peak_tflops["bf16"] == pytest.approx(312)
    assert catalog.get_gpu("a100-pcie-40gb").peak_tflops["tf32"] == pytest.approx(156)
    assert catalog.get_gpu("l4").peak_tflops["fp16"] == pytest.approx(121)
    assert catalog.get_gpu("b200").peak_tflops["fp4"] == pytest.approx(9000)
    assert catalog.get_gpu("mi300x").peak_tflops["bf16"] == pytest.approx(1307.4)


def test_native_precisions_only() -> None:
    for old in ("v100", "t4"):
        peaks = catalog.get_gpu(old).peak_tflops
        assert "fp16" in peaks
        assert "bf16" not in peaks and "tf32" not in peaks and "fp8" not in peaks
    assert "fp8" not in catalog.get_gpu("a100").peak_tflops
    assert "fp4" not in catalog.get_gpu("h100").peak_tflops


def test_tensor_clock_is_below_max_on_hopper() -> None:
    h100 = catalog.get_gpu("h100-sxm")
    assert h100.tensor_clock_mhz == 1830 and h100.max_clock_mhz == 1980
    # 989.4 TF = 132 SM x 4096 FLOP/clk x 1.83 GHz
    assert 132 * 4096 * h100.tensor_clock_mhz * 1e6 / 1e12 == pytest.approx(989.4, rel=1e-3)


def test_b200_clocks_are_what_the_devices_run() -> None:
    """A B200 boosts to 1965 MHz (flashinfer PR 2899; benchmarks lock it there), not the 1980 of third-party
    spec pages; its datasheet tensor peaks hold at ~1856 MHz (148 SMs x 8192 dense bf16 FLOP per clock)."""
    b200 = catalog.get_gpu("b200")
    assert b200.max_clock_mhz == 1965
    assert b200.sm_count * 8192 * b200.tensor_clock_mhz * 1e6 / 1e12 == pytest.approx(2250, rel=0.005)


def test_idle_and_voltage_tables_from_the_artifact() -> None:
    yz8 = catalog.get_gpu("a100-pcie-40gb")
    assert len(yz8.idle_power_table) == 81 and len(yz8.voltage_table) == 81
    assert yz8.idle_power_table[0].mhz == 210 and yz8.idle_power_table[0].value == pytest.approx(44.47)
    assert yz8.idle_power_table[-1].mhz == 1410 and yz8.idle_power_table[-1].value == pytest.approx(67.34)
    assert yz8.voltage_table[-1].value == pytest.approx(893.75)
    nets = catalog.get_gpu("a100-sxm4-80gb")
    assert nets.voltage_table[0].value == pytest.approx(743.75)
    assert nets.idle_power_table[-1].value == pytest.approx(82.3, abs=0.1)
    h100 = catalog.get_gpu("h100-sxm")
    assert h100.voltage_table == []
    assert len(h100.idle_power_table) == 109
    assert h100.idle_power_table[0].mhz == 360  # 345 MHz 117 W transient dropped
    assert max(p.value for p in h100.idle_power_table) < 125
    for gpu in (yz8, nets, h100):
        clocks = [p.mhz for p in gpu.idle_power_table]
        assert clocks == sorted(clocks)


@pytest.mark.parametrize(
    ("alias", "gpu_id"),
    [
        ("h100", "h100-sxm"),
        ("H100", "h100-sxm"),
        ("h100-sxm5", "h100-sxm"),
        ("h100-80gb", "h100-sxm"),
        ("a100", "a100-sxm4-80gb"),
        ("a100-80gb", "a100-sxm4-80gb"),
        ("a100-40gb", "a100-sxm4-40gb"),
        ("v100", "v100-sxm2-32gb"),
        ("h200-sxm", "h200"),
        ("b200-sxm", "b200"),
        ("l40s-48gb", "l40s"),
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA A100 SXM4 80GB", "a100-sxm4-80gb"),
        ("  T4 ", "t4"),
    ],
)
def test_gpu_aliases_resolve(alias: str, gpu_id: str) -> None:
    assert catalog.get_gpu(alias).id == gpu_id


@pytest.mark.parametrize(
    ("name", "model_id"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"),
        ("META-LLAMA/LLAMA-3.1-8B-INSTRUCT", "llama-3.1-8b"),
        ("llama-3.1-8b", "llama-3.1-8b"),
        ("lmsys/vicuna-13B", "llama-1-13b"),
        ("BAIR/koala-7b", "llama-1-7b"),
        ("bert", "bert-large"),
        ("gpt2", "gpt2"),
        ("facebook/opt-1.3b", "opt-1.3b"),
        ("resnet50", "resnet-50"),
        ("torchvision/resnet101", "resnet-101"),
        ("vit-l", "vit-large"),
    ],
)
def test_model_names_resolve(name: str, model_id: str) -> None:
    assert catalog.get_model(name).id == model_id


@pytest.mark.parametrize(
    ("name", "model_id"),
    [
        ("Qwen/Qwen3-30B-A3B-Thinking-2507-FP8", "qwen3-30b-a3b"),
        ("meta-llama/Llama-3.1-8B-Instruct-FP8", "llama-3.1-8b"),
        ("meta-llama/Llama-3.1-70B-Instruct-AWQ-INT4", "llama-3.1-70b"),
        ("Qwen/Qwen3-32B-AWQ", "qwen3-32b"),
        ("google/gemma-2-9b-it-FP8-dynamic", "gemma-2-9b"),
        ("codellama/CodeLlama-34b-Instruct-hf", "codellama-34b"),
    ],
)
def test_checkpoint_variants_resolve_to_their_base(name: str, model_id: str) -> None:
    # instruct/thinking/date/quantisation tags leave the shapes as they are; precision stays a field
    assert catalog.get_model(name).id == model_id


def test_variant_tags_never_guess_between_entries() -> None:
    # 'bert-base' and 'bert-large' share the base 'bert' once '-base' is read as a tag: exact names
    # still select, and a name that only the stripped base would match is not guessed
    assert catalog.get_model("bert-base").id == "bert-base"
    assert catalog.get_model("bert").id == "bert-large"  # an explicit alias, not a base match
    assert loader.current().models.base_index["bert"] is None
    with pytest.raises(UnknownNameError):
        catalog.get_model("bert-it")
    with pytest.raises(UnknownNameError):
        catalog.get_model("instruct")
    with pytest.raises(UnknownNameError):
        catalog.get_gpu("h100-sxm-fp8")  # GPU names take no variant tags


def test_no_alias_is_claimed_twice() -> None:
    for kind, entries in (("gpu", catalog.list_gpus()), ("model", catalog.list_models())):
        owner: dict[str, str] = {}
        for entry in entries:
            names = {entry.id, *entry.aliases, getattr(entry, "hf_id", None) or entry.id}
            for name in names:
                key = name.lower()
                assert owner.setdefault(key, entry.id) == entry.id, (
                    f"{kind} {name!r}: {owner[key]} and {entry.id}"
                )


# Every text model ML.ENERGY's leaderboards serve (ml-energy/benchmark: v2's pegasus queues for vLLM 0.5.4,
# v3's configs/vllm/{lm-arena-chat,gpqa,sourcegraph-fim}), so a leaderboard row is estimated from its own
# architecture (MLA, sliding windows, expert formats), not from generic shape columns
MLENERGY_TEXT_MODELS = (
    "meta-llama/Meta-Llama-3.1-8B-Instruct",
    "meta-llama/Meta-Llama-3.1-70B-Instruct",
    "meta-llama/Meta-Llama-3.1-405B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "mistralai/Mistral-Nemo-Instruct-2407",
    "mistralai/Mistral-Large-Instruct-2407",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "mistralai/Mixtral-8x22B-Instruct-v0.1",
    "microsoft/Phi-3-mini-4k-instruct",
    "microsoft/Phi-3-small-8k-instruct",
    "microsoft/Phi-3-medium-4k-instruct",
    "google/gemma-2-2b-it",
    "google/gemma-2-9b-it",
    "google/gemma-2-27b-it",
    "codellama/CodeLlama-7b-hf",
    "codellama/CodeLlama-13b-hf",
    "codellama/CodeLlama-34b-hf",
    "codellama/CodeLlama-70b-hf",
    "bigcode/starcoder2-3b",
    "bigcode/starcoder2-7b",
    "bigcode/starcoder2-15b",
    "google/codegemma-1.1-2b",
    "google/codegemma-7b",
    "Qwen/Qwen3-8B",
    "Qwen/Qwen3-14B",
    "Qwen/Qwen3-32B",
    "Qwen/Qwen3-30B-A3B-Instruct-2507",
    "Qwen/Qwen3-30B-A3B-Thinking-2507",
    "Qwen/Qwen3-235B-A22B-Instruct-2507",
    "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8",
    "Qwen/Qwen3-235B-A22B-Thinking-2507-FP8",
    "Qwen/Qwen3-Coder-30B-A3B-Instruct",
    "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8",
    "google/gemma-3-12b-it",
    "google/gemma-3-27b-it",
    "meta-llama/Llama-3.1-405B-Instruct-FP8",
    "meta-llama/Llama-3.3-70B-Instruct",
    "meta-llama/Llama-4-Scout-17B-16E-Instruct",
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8",
    "deepseek-ai/DeepSeek-V3.1",
    "deepseek-ai/DeepSeek-R1-0528",
    "deepseek-ai/DeepSeek-Coder-V2-Lite-Base",
    "mistralai/Codestral-22B-v0.1",
    "nvidia/NVIDIA-Nemotron-Nano-9B-v2",
    "nvidia/NVIDIA-Nemotron-Nano-12B-v2",
    "openai/gpt-oss-20b",
    "openai/gpt-oss-120b",
    "allenai/Olmo-3-7B-Think",
)


@pytest.mark.parametrize("name", MLENERGY_TEXT_MODELS)
def test_leaderboard_models_are_in_the_catalog(name: str) -> None:
    catalog.get_model(name)


def test_leaderboard_models_keep_their_attention() -> None:
    lite = catalog.get_model("deepseek-ai/DeepSeek-Coder-V2-Lite-Base")
    assert lite.kv_elements_per_token == 512 + 64  # the MLA latent, not 16 heads x 2 x 128
    assert (lite.moe_experts, lite.moe_active_experts, lite.moe_shared_ffn) == (64, 6, 2 * 1408)
    olmo = catalog.get_model("allenai/Olmo-3-7B-Think")
    assert olmo.sliding_window == 4096 and olmo.windowed_layer_fraction == pytest.approx(0.75)
    codestral = catalog.get_model("mistralai/Codestral-22B-v0.1")
    assert codestral.kv_heads == 8 and not codestral.sliding_window


def test_classic_models() -> None:
    opt = catalog.get_model("opt-1.3b")
    assert not opt.gated_mlp and opt.tied_embeddings
    qwen2 = catalog.get_model("qwen2-1.5b")
    assert (qwen2.layers, qwen2.hidden, qwen2.heads, qwen2.kv_heads, qwen2.ffn, qwen2.vocab) == (
        28,
        1536,
        12,
        2,
        8960,
        151936,
    )
    vit = catalog.get_model("google/vit-large-patch16-224")
    assert vit.arch_type == "encoder" and vit.image_tokens == 197
    for name in ("bert-large", "bert-base"):
        assert catalog.get_model(name).arch_type == "encoder"
    for name in ("resnet-50", "resnet-101", "mobilenetv3-large", "mobilevit-small"):
        model = catalog.get_model(name)
        assert model.arch_type == "cnn" and model.cnn is not None
    for name in ("starcoder2-3b", "gpt-j-6b", "bert-base", "gpt2", "vit-large"):
        assert not catalog.get_model(name).gated_mlp, name
    assert catalog.get_model("qwen3-32b").head_dim_ == 128
    mixtral = catalog.get_model("mixtral-8x7b")
    assert mixtral.is_moe and mixtral.moe_expert_ffn == 14336 and mixtral.ffn is None


def test_unknown_gpu_lists_allowed_ids() -> None:
    with pytest.raises(UnknownNameError) as info:
        catalog.get_gpu("h900")
    text = str(info.value)
    assert "gpu" in text and "'h900'" in text
    assert "h100-sxm" in text and "mi300x" in text
    assert info.value.allowed == [g.id for g in catalog.list_gpus()]
    assert isinstance(info.value, InvalidInputError)


def test_unknown_model_lists_allowed_ids() -> None:
    with pytest.raises(UnknownNameError) as info:
        catalog.get_model("no-such-model")
    assert "model" in str(info.value) and "llama-3.1-8b" in str(info.value)
    with pytest.raises(UnknownNameError):
        catalog.get_model("")


def test_builtin_files_are_read_once() -> None:
    before = loader._builtin.cache_info().misses
    catalog.get_gpu("h100")
    catalog.list_models()
    assert loader._builtin.cache_info().misses == before <= 1
