"""Layer graphs of the catalog CNNs against the published parameter and MAC counts."""

from __future__ import annotations

import pytest

from energaizer.catalog import get_model
from energaizer.catalog.schema import CNNSpec
from energaizer.errors import InvalidInputError
from energaizer.kernels.cnn_layers import CNNGraph, ConvLayer, cnn_layers


@pytest.mark.parametrize(
    ("model", "params_m", "gmacs"),
    [
        ("resnet-50", 25.6, 4.1),
        ("resnet-101", 44.5, 7.8),
        ("mobilenetv3-large", 5.4, 0.22),
        ("mobilevit-small", 5.6, 2.0),
    ],
)
def test_catalog_cnn_matches_published_counts(model: str, params_m: float, gmacs: float) -> None:
    spec = get_model(model).cnn
    assert spec is not None
    graph = cnn_layers(spec)
    assert graph.params / 1e6 == pytest.approx(params_m, rel=0.10)
    assert graph.macs / 1e9 == pytest.approx(gmacs, rel=0.10)
    assert graph.params / 1e9 == pytest.approx(get_model(model).params_b, rel=0.05)


@pytest.mark.parametrize(
    ("depth", "params"),
    [(18, 11_689_512), (34, 21_797_672), (50, 25_557_032), (101, 44_549_160), (152, 60_192_808)],
)
def test_resnet_parameter_counts_match_torchvision_exactly(depth: int, params: int) -> None:
    assert cnn_layers(CNNSpec(family="resnet", depth=depth)).params == params


def test_resnet50_shapes() -> None:
    graph = cnn_layers(CNNSpec(family="resnet", depth=50))
    assert graph.convs[0] == ConvLayer(cin=3, cout=64, k=7, stride=2, groups=1, h_out=112, w_out=112)
    assert graph.convs[-1].h_out == 7 and graph.convs[-1].cout == 2048
    assert len(graph.convs) == 53  # 1 stem + 16 blocks x 3 + 4 projections
    assert graph.linears[-1].d_in == 2048 and graph.linears[-1].d_out == 1000
    assert graph.attentions == ()
    assert graph.elementwise_elems > 0


def test_mobilenetv3_has_depthwise_and_squeeze_excite() -> None:
    large = cnn_layers(CNNSpec(family="mobilenetv3", variant="large"))
    depthwise = [c for c in large.convs if c.groups > 1]
    assert len(depthwise) == 15 and all(c.groups == c.cin == c.cout for c in depthwise)
    se = [c for c in large.convs if c.h_out == 1]
    assert len(se) == 2 * 8  # 8 blocks with SE, two 1x1 FCs each
    small = cnn_layers(CNNSpec(family="mobilenetv3", variant="small"))
    assert small.params == 2_542_856
    assert large.params == 5_483_032


def test_mobilevit_transformer_layers() -> None:
    graph = cnn_layers(CNNSpec(family="mobilevit", variant="small", image_size=256))
    assert len(graph.attentions) == 2 + 4 + 3
    first = graph.attentions[0]
    assert first.tokens == 16 * 16 and first.heads == 4 * 4 and first.head_dim == 36
    assert {x.d_in for x in graph.linears if x.tokens > 1} >= {144, 192, 240}


def test_graph_is_frozen_and_cached() -> None:
    spec = CNNSpec(family="resnet", depth=50)
    graph = cnn_layers(spec)
    assert cnn_layers(CNNSpec(family="resnet", depth=50)) is graph
    assert isinstance(graph, CNNGraph)
    with pytest.raises(AttributeError):
        graph.params = 0  # type: ignore[misc]


def test_image_size_scales_macs() -> None:
    small = cnn_layers(CNNSpec(family="resnet", depth=50, image_size=112))
    full = cnn_layers(CNNSpec(family="resnet", depth=50))
    assert small.params == full.params
    assert small.macs < 0.3 * full.macs


def test_unknown_depth_and_variant() -> None:
    with pytest.raises(InvalidInputError, match=r"cnn\.depth"):
        cnn_layers(CNNSpec(family="resnet", depth=42))
    with pytest.raises(InvalidInputError, match=r"cnn\.variant"):
        cnn_layers(CNNSpec(family="mobilenetv3", variant="huge"))
