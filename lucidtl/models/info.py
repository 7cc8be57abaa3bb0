"""What build_model tells about a model besides the network: `ModelInfo` (shared by every model form's builder:
weights.py, lucid_zoo.py, saved_model.py)."""
import dataclasses

RANDOM_SOURCE = "random (Keras initialisers; seed with keras.utils.set_random_seed)"


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """The model's name, where its weights came from, the input range it expects, whether they are random,
    and a note for the user (e.g. an assumed input range)."""
    name: str
    weights_source: str
    input_range: tuple
    random_weights: bool
    note: str = ""
