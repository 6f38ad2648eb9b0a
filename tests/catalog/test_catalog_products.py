"""GPU Feature Discovery product labels -> catalog ids."""

from __future__ import annotations

import pytest

from energaizer.catalog import gpu_id_for_product, list_gpus, parse_product, resolve_product
from energaizer.errors import UnknownNameError


@pytest.mark.parametrize(
    ("label", "gpu_id"),
    [
        ("NVIDIA-H100-80GB-HBM3", "h100-sxm"),
        ("NVIDIA-H100-PCIe", "h100-pcie"),
        ("NVIDIA-H100-NVL", "h100-nvl"),
        ("NVIDIA-H200", "h200"),
        ("NVIDIA-A100-SXM4-80GB", "a100-sxm4-80gb"),
        ("NVIDIA-A100-SXM4-40GB", "a100-sxm4-40gb"),
        ("NVIDIA-A100-PCIE-40GB", "a100-pcie-40gb"),
        ("NVIDIA-A100-80GB-PCIe", "a100-pcie-80gb"),
        ("Tesla-T4", "t4"),
        ("Tesla-V100-SXM2-32GB", "v100-sxm2-32gb"),
        ("NVIDIA-A10", "a10"),
        ("NVIDIA-A10G", "a10g"),
        ("NVIDIA-L4", "l4"),
        ("NVIDIA-L40S", "l40s"),
        ("NVIDIA-B200", "b200"),
        ("AMD_Instinct_MI300X", "mi300x"),
        ("AMD_Instinct_MI300X_OAM", "mi300x"),
        ("nvidia-h100-80gb-hbm3", "h100-sxm"),
        ("NVIDIA-A10G-SHARED", "a10g"),
        ("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", "a100-sxm4-40gb"),
        ("NVIDIA-A100-SXM4-80GB-MIG-3g.40gb", "a100-sxm4-80gb"),
        ("NVIDIA-H100-80GB-HBM3-MIG-1g.10gb-SHARED", "h100-sxm"),
        ("NVIDIA-A40", "a40"),
    ],
)
def test_gfd_labels_map_to_catalog_ids(label: str, gpu_id: str) -> None:
    assert gpu_id_for_product(label) == gpu_id


def test_every_contract_gpu_has_a_product_label() -> None:
    for gpu in list_gpus():
        for product in gpu.gfd_products:
            assert gpu_id_for_product(product) == gpu.id


@pytest.mark.parametrize("label", ["NVIDIA-GeForce-RTX-4090", "", "  ", None, "NVIDIA-RTX-A6000"])
def test_unknown_products_give_none(label: str | None) -> None:
    assert gpu_id_for_product(label) is None


def test_mig_profile_and_shared_flag_are_exposed() -> None:
    label = parse_product("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb-SHARED")
    assert label.product == "NVIDIA-A100-SXM4-40GB"
    assert label.mig_profile == "1g.5gb" and label.shared
    resolved = resolve_product("NVIDIA-H100-80GB-HBM3-MIG-3g.40gb")
    assert resolved is not None
    assert resolved.gpu_id == "h100-sxm" and resolved.mig_profile == "3g.40gb"
    plain = parse_product("Tesla-T4")
    assert plain.mig_profile is None and not plain.shared and plain.product == "Tesla-T4"


def test_explicit_mapping_overrides_catalog() -> None:
    mapping = {"nvidia-h100-80gb-hbm3": "h200", "ACME-Accel-9000": "a100", "Custom-Card": "l4"}
    assert gpu_id_for_product("NVIDIA-H100-80GB-HBM3", mapping) == "h200"
    assert gpu_id_for_product("ACME-Accel-9000", mapping) == "a100-sxm4-80gb"  # alias targets resolve
    assert gpu_id_for_product("Custom-Card-SHARED", mapping) == "l4"
    assert gpu_id_for_product("NVIDIA-L40S", mapping) == "l40s"  # not in the mapping
    with pytest.raises(UnknownNameError):
        gpu_id_for_product("ACME-X", {"ACME-X": "no-such-gpu"})
