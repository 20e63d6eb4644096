"""Networks used to distil and to evaluate: the field's ConvNet-3, an MLP, LeNet, and the field's AlexNet, VGG-11
(BatchNorm) and ResNet-18 (BatchNorm) for cross-architecture checks.

All take *normalised* images N×C×H×W and expose `embed(x)` (features before the classifier) for DM and the
feature-space selectors. 28×28 inputs are zero-padded to 32×32, as in the DC evaluation protocol.

A ConvNet built without an explicit depth gets `default_depth(image_size)` blocks, as the field sizes it: three at
32 px (ConvNet-3 on MNIST, CIFAR), four at 64 px (ConvNetD4 on Tiny-ImageNet in DM and MTT), one more per doubling
beyond, so the feature map before the classifier stays 4×4 to 7×7; smaller images get two blocks (16 px: 4×4; 8×8
digits: 2×2 — a third block would instance-normalise 2×2 maps, which on digits costs a network trained on a
summary several points, far more on soft labels; README, Evaluation protocols).

AlexNet, VGG-11 and ResNet-18 follow the DC/DSA authors' `networks.py` (VICO-UoE/DatasetCondensation), the
networks every cross-architecture table of the field is measured with: there, a grey 28×28 image is padded to
32×32 by the first convolution (padding 4, resp. 3); here every model gets the same 32×32 input from `_pad_28`,
so the feature maps have the same sizes. Their channel counts are the published ones at `width=128` (the
ConvNet-equivalent width the `paper` protocol passes) and scale by `width / 128` (the `quick` protocol's 64
halves them, ~4× fewer operations), so "quick" stays the same semantics on a CPU budget. `depth` does not
apply to them (their depth is their name). Pooling stops at 1×1, so 8×8 digits go through every network.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InvalidInputError, UnknownNameError


def _pad_28(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x, (2, 2, 2, 2)) if x.shape[-1] == 28 and x.shape[-2] == 28 else x


def _padded_size(size: int) -> int:
    return 32 if size == 28 else size


def default_depth(image_size: int) -> int:
    """ConvNet blocks for square inputs of `image_size` pixels: 2 up to 16 px, 3 at 32 px, 4 at 64 px, 5 at 128
    px, ... (each block halves the map; the classifier then sees 4×4 to 7×7 of it, 2×2 below 16 px)."""
    size = _padded_size(int(image_size))
    if size < 1:
        raise InvalidInputError(f"image size must be at least 1 pixel, got {image_size}")
    return max(2, size.bit_length() - 3)  # floor(log2 size) - 2: the last map is 4×4 to 7×7


def _norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "instancenorm":  # GroupNorm with one group per channel = instance norm with affine parameters
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "batchnorm":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise UnknownNameError(f"unknown norm {kind!r}; choose instancenorm, batchnorm or none")


class ConvNet(nn.Module):
    """ConvNet-D: D blocks of [3×3 conv (width channels) -> norm -> ReLU -> 2×2 average pool], then a linear layer.

    depth None (or 0): `default_depth(image_size)`."""

    def __init__(self, channels: int, num_classes: int, image_size: int, width: int = 128, depth: int | None = None,
                 norm: str = "instancenorm"):
        super().__init__()
        depth = int(depth) if depth else default_depth(image_size)
        self.depth = depth
        layers: list[nn.Module] = []
        size = _padded_size(image_size)
        in_ch = channels
        for _ in range(depth):
            layers += [nn.Conv2d(in_ch, width, kernel_size=3, padding=1), _norm_layer(norm, width),
                       nn.ReLU(inplace=True)]
            if size >= 2:
                layers.append(nn.AvgPool2d(2, 2))
                size //= 2
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.feature_dim = width * size * size
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(_pad_28(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class MLP(nn.Module):
    """A fully connected ReLU network on flattened pixels."""

    def __init__(self, channels: int, num_classes: int, image_size: int, width: int = 128, depth: int = 3):
        super().__init__()
        dims = [channels * _padded_size(image_size) ** 2] + [width] * (depth - 1)
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.feature_dim = dims[-1]
        self.classifier = nn.Linear(dims[-1], num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(_pad_28(x).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class LeNet(nn.Module):
    """LeNet-5 style: two 5×5 conv + max-pool stages, then two hidden linear layers."""

    def __init__(self, channels: int, num_classes: int, image_size: int, width: int = 128, depth: int = 3):
        super().__init__()
        size = _padded_size(image_size)
        pad = 2 if size < 16 else 0  # keep small inputs (8×8 digits) alive through two pools
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=pad), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=pad), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, channels, size, size)).numel()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(flat, 120), nn.ReLU(inplace=True),
                                      nn.Linear(120, 84), nn.ReLU(inplace=True))
        self.feature_dim = 84
        self.classifier = nn.Linear(84, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.conv(_pad_28(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


FIELD_WIDTH = 128  # the ConvNet width at which AlexNet, VGG-11 and ResNet-18 have their published channel counts


def _scaled(channels: int, width: int) -> int:
    """A published channel count scaled by width / FIELD_WIDTH (at least 8)."""
    return max(8, int(round(channels * width / FIELD_WIDTH)))


class AlexNet(nn.Module):
    """The field's AlexNet for small images: five convolutions (128-192-256-192-192 channels, 5×5, 5×5, then 3×3),
    ReLU, three 2×2 max-pools, one linear layer; no normalisation, as in the DC/DSA code."""

    def __init__(self, channels: int, num_classes: int, image_size: int, width: int = FIELD_WIDTH, depth: int = 3):
        super().__init__()
        c1, c2, c3, c4, c5 = (_scaled(n, width) for n in (128, 192, 256, 192, 192))
        size = _padded_size(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels, c1, 5, padding=2), nn.ReLU(inplace=True)]
        layers += _max_pool(size)
        size = max(1, size // 2)
        layers += [nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(inplace=True)]
        layers += _max_pool(size)
        size = max(1, size // 2)
        layers += [nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True),
                   nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(inplace=True),
                   nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(inplace=True)]
        layers += _max_pool(size)
        size = max(1, size // 2)
        self.features = nn.Sequential(*layers)
        self.feature_dim = c5 * size * size
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(_pad_28(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def _max_pool(size: int) -> list[nn.Module]:
    """A 2×2 max-pool while the map is at least 2×2 (8×8 digits run out of pixels before the field's nets do)."""
    return [nn.MaxPool2d(2, 2)] if size >= 2 else []


VGG11_PLAN = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11(nn.Module):
    """The field's VGG-11 with BatchNorm: 3×3 convolutions of 64-128-256-256-512-512-512-512 channels, each followed
    by BatchNorm and ReLU, five 2×2 max-pools (32×32 -> 1×1), one linear layer on the 512 features."""

    def __init__(self, channels: int, num_classes: int, image_size: int, width: int = FIELD_WIDTH, depth: int = 3):
        super().__init__()
        size = _padded_size(image_size)
        in_ch = channels
        layers: list[nn.Module] = []
        for item in VGG11_PLAN:
            if item == "M":
                layers += _max_pool(size)
                size = max(1, size // 2)
                continue
            out = _scaled(int(item), width)
            layers += [nn.Conv2d(in_ch, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            in_ch = out
        self.features = nn.Sequential(*layers)
        self.feature_dim = in_ch * size * size
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(_pad_28(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3×3 conv + BatchNorm, a shortcut (1×1 conv + BatchNorm when the shape changes)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """The field's ResNet-18 with BatchNorm for small images: a 3×3 stem of 64 channels (no max-pool), four stages
    of two basic blocks (64, 128, 256, 512 channels; stride 1, 2, 2, 2), global average pooling, one linear layer."""

    def __init__(self, channels: int, num_classes: int, image_size: int, width: int = FIELD_WIDTH, depth: int = 3):
        super().__init__()
        stem = _scaled(64, width)
        self.stem = nn.Sequential(nn.Conv2d(channels, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem),
                                  nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        in_ch = stem
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            out = _scaled(planes, width)
            blocks += [BasicBlock(in_ch, out, stride), BasicBlock(out, out, 1)]
            in_ch = out
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = in_ch
        self.classifier = nn.Linear(in_ch, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.stem(_pad_28(x)))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)  # = the 4×4 average pool of the 32×32 original

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


ModelFactory = Callable[..., nn.Module]
MODELS: dict[str, ModelFactory] = {"convnet": ConvNet, "mlp": MLP, "lenet": LeNet, "alexnet": AlexNet,
                                   "vgg11": VGG11, "resnet18": ResNet18}
# the field's fixed-shape networks: `width` scales their published channels (see the module docstring)
FIELD_MODELS = ("alexnet", "vgg11", "resnet18")


def build_model(name: str, channels: int, num_classes: int, image_size: int, **kwargs) -> nn.Module:
    """Build a registered architecture; kwargs (width, depth, norm) go to its constructor.

    depth None or 0 means the architecture's own default: for the ConvNet, `default_depth(image_size)`."""
    if name not in MODELS:
        raise UnknownNameError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if name != "convnet":
        kwargs.pop("norm", None)
    if not kwargs.get("depth", 1):
        kwargs.pop("depth")
    return MODELS[name](channels, num_classes, image_size, **kwargs)


def build_for(dataset, name: str = "convnet", **kwargs) -> nn.Module:
    """Build a model shaped for an ImageSet."""
    c, h, _ = dataset.image_shape
    return build_model(name, c, dataset.num_classes, h, **kwargs)


_INIT_LOCK = __import__("threading").Lock()


def build_seeded(dataset, name: str = "convnet", seed: int = 0, device: torch.device | str = "cpu",
                 **kwargs) -> nn.Module:
    """A freshly initialised model whose weights depend only on `seed` (the global RNG is left untouched)."""
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = build_for(dataset, name, **kwargs)
    return model.to(device)
