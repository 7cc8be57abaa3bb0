"""The errors a user can cause. Each has a one-line message naming the problem and the fix;
CLIs turn them into exit code 2 without a traceback."""
import difflib


class LucidtlError(Exception):
    """Base class of user-facing errors."""


class UnknownLayerError(LucidtlError, KeyError):
    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ChannelRangeError(LucidtlError, IndexError):
    pass


class InvalidArgumentError(LucidtlError, ValueError):
    pass


class WeightsError(LucidtlError, OSError):
    pass


class UnknownModelError(LucidtlError, KeyError):
    def __str__(self):
        return str(self.args[0]) if self.args else ""


_LISTED_BY = "_lucidtl_layers_flags"


def listed_by(model, flags=None):
    """The flags that make `python -m lucidtl.render layers` list `model`'s layers (`--run runs/mine`,
    `--model m.keras`): set by whoever loads a model (flags given), read by unknown-layer messages."""
    if flags is None:
        return getattr(model, _LISTED_BY, "")
    try:
        object.__setattr__(model, _LISTED_BY, str(flags))
    except (AttributeError, TypeError):
        pass
    return model


def layers_command(model):
    """The command that lists `model`'s layers, with the flags that loaded it."""
    flags = listed_by(model)
    return "python -m lucidtl.render layers" + (f" {flags}" if flags else "")


def closest(name, candidates, n=5):
    """The candidates nearest to `name`, best first (for 'did you mean' messages)."""
    candidates = list(candidates)
    near = difflib.get_close_matches(name, candidates, n=n, cutoff=0.0)
    low = name.lower()
    sub = [c for c in candidates if low and low in c.lower() and c not in near]
    return (sub + near)[:n]


def did_you_mean(name, candidates, n=5):
    near = closest(name, candidates, n)
    return ("; closest: " + ", ".join(near)) if near else ""


def one_line(error, limit):
    """An error's message on one line (whitespace runs collapsed; its type's name if empty), cut to `limit`
    characters with "..." at a word boundary where one is near (for quoting another library's error inside ours)."""
    text = " ".join(str(error).split()) or type(error).__name__
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    space = cut.rfind(" ")
    return (cut[:space] if space >= limit - 33 else cut) + "..."
