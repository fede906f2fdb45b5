"""Small torchvision image classifiers usable as release entrypoints.

An entrypoint returns an `ImageClassifier`: a torchvision network plus the `preprocess` that turns
one PIL image into its input tensor, which is what `llm2loss.losses` needs to run the model on raw
samples. Weights come from the release (safetensors of `model.state_dict()`), e.g. a release with
`entrypoint="llm2loss.example_models.vision:resnet18"` and
`metadata={"entrypoint_kwargs": {"num_classes": 10, "image_size": 32}}`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision import models, transforms

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "resnet18": models.resnet18,
    "mobilenet_v3_small": models.mobilenet_v3_small,
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageClassifier(nn.Module):
    """A classifier network with the per-image `preprocess` it expects; outputs logits."""

    def __init__(self, network: nn.Module, *, image_size: int) -> None:
        super().__init__()
        self.network = network
        self.preprocess = transforms.Compose(
            [
                transforms.Resize(image_size),
                transforms.CenterCrop(image_size),
                transforms.ToTensor(),
                transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Logits (n, classes) for a batch of preprocessed images."""
        return self.network(pixels)


def classifier(architecture: str, *, num_classes: int = 10, image_size: int = 32) -> ImageClassifier:
    """A randomly initialised torchvision `architecture` with `num_classes` outputs."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}: choose one of {sorted(ARCHITECTURES)}")
    return ImageClassifier(ARCHITECTURES[architecture](num_classes=num_classes), image_size=image_size)


def resnet18(*, num_classes: int = 10, image_size: int = 32) -> ImageClassifier:
    """Entrypoint: torchvision ResNet-18 with its preprocess."""
    return classifier("resnet18", num_classes=num_classes, image_size=image_size)


def mobilenet_v3_small(*, num_classes: int = 10, image_size: int = 32) -> ImageClassifier:
    """Entrypoint: torchvision MobileNetV3-Small with its preprocess."""
    return classifier("mobilenet_v3_small", num_classes=num_classes, image_size=image_size)
