"""Layer shapes of the catalog's convolutional networks, generated from a :class:`CNNSpec`.

Supported: ResNet-18/34/50/101/152 (torchvision layout, stride on the 3x3 conv, "v1.5"),
MobileNetV3 large/small (torchvision layout: depthwise convs, squeeze-and-excitation, hard-swish)
and MobileViT-small (Apple / Hugging Face layout: MobileNetV2 blocks plus MobileViT blocks whose
transformers run over 2x2 patches).

Everything is per image. A :class:`ConvLayer` is one convolution (``groups == cin`` for a
depthwise one); squeeze-and-excitation FCs are 1x1 convolutions on a 1x1 map. A
:class:`LinearLayer` is a GEMM of ``tokens x d_in`` by ``d_in x d_out`` (classifier heads have one
token). An :class:`AttentionLayer` is ``heads`` independent softmax(QK^T)V products over ``tokens``
tokens; for MobileViT, ``heads`` counts heads times the 4 pixel positions of a 2x2 patch, which
attend separately. ``elementwise_elems`` approximates the element-wise work (batch-norm,
activations, residual adds, SE scaling, layer-norm, pooling) in elements touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from energaizer.catalog.schema import CNNSpec
from energaizer.errors import InvalidInputError


@dataclass(frozen=True)
class ConvLayer:
    cin: int
    cout: int
    k: int
    stride: int
    groups: int
    h_out: int
    w_out: int

    @property
    def macs(self) -> int:
        return self.cout * self.h_out * self.w_out * (self.cin // self.groups) * self.k * self.k

    @property
    def weights(self) -> int:
        return self.cout * (self.cin // self.groups) * self.k * self.k


@dataclass(frozen=True)
class LinearLayer:
    tokens: int
    d_in: int
    d_out: int

    @property
    def macs(self) -> int:
        return self.tokens * self.d_in * self.d_out


@dataclass(frozen=True)
class AttentionLayer:
    tokens: int
    heads: int
    head_dim: int

    @property
    def macs(self) -> int:
        """QK^T plus PV multiply-accumulates."""
        return 2 * self.heads * self.tokens * self.tokens * self.head_dim


@dataclass(frozen=True)
class CNNGraph:
    """Per-image layer shapes of a network."""

    name: str
    image_size: int
    convs: tuple[ConvLayer, ...]
    linears: tuple[LinearLayer, ...]
    attentions: tuple[AttentionLayer, ...]
    elementwise_elems: int
    params: int

    @property
    def macs(self) -> int:
        """Multiply-accumulates per image of the convolutions, GEMMs and attention products."""
        return (
            sum(c.macs for c in self.convs)
            + sum(x.macs for x in self.linears)
            + sum(a.macs for a in self.attentions)
        )


def _out(size: int, k: int, stride: int) -> int:
    return (size + 2 * (k // 2) - k) // stride + 1


def _make_divisible(value: float, divisor: int = 8) -> int:
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


@dataclass
class _Builder:
    """Accumulates layers while tracking the feature-map size."""

    h: int
    w: int
    convs: list[ConvLayer] = field(default_factory=list)
    linears: list[LinearLayer] = field(default_factory=list)
    attentions: list[AttentionLayer] = field(default_factory=list)
    elementwise: int = 0
    params: int = 0

    def conv(
        self,
        cin: int,
        cout: int,
        k: int,
        stride: int = 1,
        groups: int = 1,
        *,
        bn: bool = True,
        act: bool = True,
        bias: bool = False,
    ) -> int:
        """Add a conv (+BN, +activation); returns the output elements per image."""
        h, w = _out(self.h, k, stride), _out(self.w, k, stride)
        layer = ConvLayer(cin, cout, k, stride, groups, h, w)
        self.convs.append(layer)
        self.params += layer.weights + (cout if bias else 0) + (2 * cout if bn else 0)
        elems = cout * h * w
        self.elementwise += elems * (int(bn) + int(act))
        self.h, self.w = h, w
        return elems

    def linear(self, tokens: int, d_in: int, d_out: int, *, bias: bool = True) -> None:
        self.linears.append(LinearLayer(tokens, d_in, d_out))
        self.params += d_in * d_out + (d_out if bias else 0)

    def pool(self, channels: int, k: int, stride: int) -> None:
        self.h, self.w = _out(self.h, k, stride), _out(self.w, k, stride)
        self.elementwise += channels * self.h * self.w * k * k

    def global_pool(self, channels: int) -> None:
        self.elementwise += channels * self.h * self.w
        self.h = self.w = 1

    def build(self, name: str, image_size: int) -> CNNGraph:
        return CNNGraph(
            name=name,
            image_size=image_size,
            convs=tuple(self.convs),
            linears=tuple(self.linears),
            attentions=tuple(self.attentions),
            elementwise_elems=self.elementwise,
            params=self.params,
        )


# ----------------------------------------------------------------------------------------- ResNet

_RESNET_BLOCKS: dict[int, tuple[bool, tuple[int, int, int, int]]] = {
    18: (False, (2, 2, 2, 2)),
    34: (False, (3, 4, 6, 3)),
    50: (True, (3, 4, 6, 3)),
    101: (True, (3, 4, 23, 3)),
    152: (True, (3, 8, 36, 3)),
}


def _resnet(spec: CNNSpec) -> CNNGraph:
    depth = spec.depth or 50
    if depth not in _RESNET_BLOCKS:
        raise InvalidInputError("cnn.depth", f"no ResNet-{depth}", [str(d) for d in _RESNET_BLOCKS])
    bottleneck, counts = _RESNET_BLOCKS[depth]
    expansion = 4 if bottleneck else 1
    b = _Builder(spec.image_size, spec.image_size)
    b.conv(3, 64, 7, 2)
    b.pool(64, 3, 2)
    cin = 64
    for stage, blocks in enumerate(counts):
        width = 64 * 2**stage
        for index in range(blocks):
            stride = 2 if stage > 0 and index == 0 else 1
            cout = width * expansion
            h_in, w_in = b.h, b.w
            if stride != 1 or cin != cout:  # projection shortcut, computed from the block input
                b.conv(cin, cout, 1, stride, act=False)
                b.h, b.w = h_in, w_in
            if bottleneck:
                b.conv(cin, width, 1)
                b.conv(width, width, 3, stride)
                elems = b.conv(width, cout, 1, act=False)
            else:
                b.conv(cin, width, 3, stride)
                elems = b.conv(width, cout, 3, act=False)
            b.elementwise += 2 * elems  # residual add + ReLU
            cin = cout
    b.global_pool(cin)
    b.linear(1, cin, spec.num_classes)
    return b.build(f"resnet-{depth}", spec.image_size)


# ------------------------------------------------------------------------------------ MobileNetV3

# (kernel, expanded, out, squeeze-excite, stride) per inverted-residual block; the activation
# (ReLU or hard-swish) does not change the shapes.
_MBV3: dict[str, tuple[tuple[tuple[int, int, int, bool, int], ...], int, int]] = {
    "large": (
        (
            (3, 16, 16, False, 1),
            (3, 64, 24, False, 2),
            (3, 72, 24, False, 1),
            (5, 72, 40, True, 2),
            (5, 120, 40, True, 1),
            (5, 120, 40, True, 1),
            (3, 240, 80, False, 2),
            (3, 200, 80, False, 1),
            (3, 184, 80, False, 1),
            (3, 184, 80, False, 1),
            (3, 480, 112, True, 1),
            (3, 672, 112, True, 1),
            (5, 672, 160, True, 2),
            (5, 960, 160, True, 1),
            (5, 960, 160, True, 1),
        ),
        960,
        1280,
    ),
    "small": (
        (
            (3, 16, 16, True, 2),
            (3, 72, 24, False, 2),
            (3, 88, 24, False, 1),
            (5, 96, 40, True, 2),
            (5, 240, 40, True, 1),
            (5, 240, 40, True, 1),
            (5, 120, 48, True, 1),
            (5, 144, 48, True, 1),
            (5, 288, 96, True, 2),
            (5, 576, 96, True, 1),
            (5, 576, 96, True, 1),
        ),
        576,
        1024,
    ),
}


def _squeeze_excite(b: _Builder, channels: int) -> None:
    squeeze = _make_divisible(channels // 4)
    h, w = b.h, b.w
    b.elementwise += channels * h * w  # global average pool
    b.h = b.w = 1
    b.conv(channels, squeeze, 1, bn=False, bias=True)
    b.conv(squeeze, channels, 1, bn=False, bias=True)
    b.h, b.w = h, w
    b.elementwise += channels * h * w  # channel-wise scaling


def _mobilenetv3(spec: CNNSpec) -> CNNGraph:
    variant = (spec.variant or "large").lower()
    if variant not in _MBV3:
        raise InvalidInputError("cnn.variant", f"no MobileNetV3-{variant}", list(_MBV3))
    blocks, last_conv, last_linear = _MBV3[variant]
    b = _Builder(spec.image_size, spec.image_size)
    cin = 16
    b.conv(3, cin, 3, 2)
    for k, expanded, cout, se, stride in blocks:
        if expanded != cin:
            b.conv(cin, expanded, 1)
        b.conv(expanded, expanded, k, stride, groups=expanded)
        if se:
            _squeeze_excite(b, expanded)
        elems = b.conv(expanded, cout, 1, act=False)
        if stride == 1 and cin == cout:
            b.elementwise += elems
        cin = cout
    b.conv(cin, last_conv, 1)
    b.global_pool(last_conv)
    b.linear(1, last_conv, last_linear)
    b.elementwise += last_linear
    b.linear(1, last_linear, spec.num_classes)
    return b.build(f"mobilenetv3-{variant}", spec.image_size)


# -------------------------------------------------------------------------------------- MobileViT


@dataclass(frozen=True)
class _MobileViTConfig:
    stem: int
    mv2: tuple[tuple[int, int, int], ...]  # MobileNetV2 stages: (out channels, stride, blocks)
    vit: tuple[tuple[int, int, int], ...]  # MobileViT stages: (out channels, transformer dim, layers)
    exp: int
    expand_ratio: int = 4
    heads: int = 4
    mlp_ratio: int = 2
    patch: int = 2


# Each MobileViT stage starts with a stride-2 inverted residual (apple/mobilevit-small config).
_MOBILEVIT = {
    "small": _MobileViTConfig(
        stem=16,
        mv2=((32, 1, 1), (64, 2, 3)),
        vit=((96, 144, 2), (128, 192, 4), (160, 240, 3)),
        exp=640,
    ),
}


def _inverted_residual(b: _Builder, cin: int, cout: int, stride: int, expand_ratio: int) -> None:
    expanded = cin * expand_ratio
    b.conv(cin, expanded, 1)
    b.conv(expanded, expanded, 3, stride, groups=expanded)
    elems = b.conv(expanded, cout, 1, act=False)
    if stride == 1 and cin == cout:
        b.elementwise += elems


def _mobilevit_block(
    b: _Builder, channels: int, dim: int, layers: int, heads: int, mlp_ratio: int, patch: int
) -> None:
    b.conv(channels, channels, 3)
    b.conv(channels, dim, 1, bn=False, act=False)
    pixels = patch * patch
    patches = (b.h // patch) * (b.w // patch)
    tokens = pixels * patches  # every pixel of every patch; attention runs per pixel position
    for _ in range(layers):
        b.elementwise += 2 * tokens * dim  # two layer-norms
        b.params += 2 * 2 * dim
        for _qkv_out in range(4):  # query, key, value, output projections
            b.linear(tokens, dim, dim)
        b.attentions.append(AttentionLayer(tokens=patches, heads=heads * pixels, head_dim=dim // heads))
        b.elementwise += heads * pixels * patches * patches  # softmax
        b.linear(tokens, dim, dim * mlp_ratio)
        b.elementwise += tokens * dim * mlp_ratio  # SiLU
        b.linear(tokens, dim * mlp_ratio, dim)
        b.elementwise += 2 * tokens * dim  # residual adds
    b.elementwise += tokens * dim  # final layer-norm
    b.params += 2 * dim
    b.conv(dim, channels, 1)
    b.conv(2 * channels, channels, 3)  # fusion of the block input and the transformer output


def _mobilevit(spec: CNNSpec) -> CNNGraph:
    variant = (spec.variant or "small").lower()
    if variant not in _MOBILEVIT:
        raise InvalidInputError("cnn.variant", f"no MobileViT-{variant}", list(_MOBILEVIT))
    cfg = _MOBILEVIT[variant]
    b = _Builder(spec.image_size, spec.image_size)
    cin = cfg.stem
    b.conv(3, cin, 3, 2)
    for cout, stride, blocks in cfg.mv2:
        for index in range(blocks):
            _inverted_residual(b, cin, cout, stride if index == 0 else 1, cfg.expand_ratio)
            cin = cout
    for cout, dim, layers in cfg.vit:
        _inverted_residual(b, cin, cout, 2, cfg.expand_ratio)
        cin = cout
        _mobilevit_block(b, cin, dim, layers, cfg.heads, cfg.mlp_ratio, cfg.patch)
    b.conv(cin, cfg.exp, 1)
    b.global_pool(cfg.exp)
    b.linear(1, cfg.exp, spec.num_classes)
    return b.build(f"mobilevit-{variant}", spec.image_size)


_FAMILIES = {"resnet": _resnet, "mobilenetv3": _mobilenetv3, "mobilevit": _mobilevit}


@cache
def _cached(family: str, depth: int | None, variant: str | None, image_size: int, classes: int) -> CNNGraph:
    spec = CNNSpec.model_validate(
        {
            "family": family,
            "depth": depth,
            "variant": variant,
            "image_size": image_size,
            "num_classes": classes,
        }
    )
    return _FAMILIES[family](spec)


def cnn_layers(spec: CNNSpec) -> CNNGraph:
    """The per-image layer graph of ``spec`` (cached per distinct spec)."""
    return _cached(spec.family, spec.depth, spec.variant, spec.image_size, spec.num_classes)
