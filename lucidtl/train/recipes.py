"""The paper's training recipes as presets; every field can be overridden from the CLI.

- "paper": the 200-epoch runs (batch 32, dense(1024, relu) + dense(n), Adam 1e-3, 224 px).
- "temporal": the run of Figure 6 (CelebA, 3000 iterations, batch 10, one dense layer), saved at
  0, 10, 20, 30, 60, 150, 1000, 3000.
- "authors-code" / "authors-code-temporal": what the authors' public code did where it differs from the
  text (spec/paper.md): images fed in [0, 1] although the slim weights expect [-1, 1], Keras' BatchNorm
  momentum 0.99, 299 px for Flowers17/Animals (224 for CelebA), CelebA with RMSprop and a cosine-proximity
  loss; its temporal run: 10 iterations an "epoch" at batch 10, saved every second epoch up to 20.
"""
import dataclasses
from typing import Optional

from lucidtl.errors import InvalidArgumentError, did_you_mean


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    epochs: Optional[int]  # None: the run is `iterations` long
    iterations: Optional[int]
    batch_size: int
    top: str  # "paper" (dense 1024 + dense n) or "single" (dense n)
    image_size: int
    save_at: str = "paper"
    steps_per_epoch: Optional[int] = None  # None: one pass over the training set
    input_scaling: str = "slim"  # "unit": [0, 1] fed as-is (the authors' code)
    bn_momentum: Optional[float] = None  # None: slim's 0.9997
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    multi_label_optimizer: Optional[str] = None  # authors' CelebA: rmsprop
    multi_label_loss: str = "binary_crossentropy"  # authors' CelebA: cosine_similarity
    multi_label_image_size: Optional[int] = None


RECIPES = {
    "paper": Recipe("paper", epochs=200, iterations=None, batch_size=32, top="paper", image_size=224),
    "temporal": Recipe("temporal", epochs=None, iterations=3000, batch_size=10, top="single", image_size=224),
    "authors-code": Recipe(
        "authors-code", epochs=200, iterations=None, batch_size=32, top="paper", image_size=299,
        input_scaling="unit", bn_momentum=0.99, multi_label_optimizer="rmsprop",
        multi_label_loss="cosine_similarity", multi_label_image_size=224),
    "authors-code-temporal": Recipe(
        "authors-code-temporal", epochs=20, iterations=None, batch_size=10, top="single", image_size=224,
        save_at="every:20", steps_per_epoch=10, input_scaling="unit", bn_momentum=0.99,
        multi_label_optimizer="rmsprop", multi_label_loss="cosine_similarity"),
}


def recipe(name):
    if name not in RECIPES:
        raise InvalidArgumentError(f"unknown --recipe {name!r}{did_you_mean(str(name), RECIPES)}; "
                                   f"choose one of {', '.join(RECIPES)}")
    return RECIPES[name]
