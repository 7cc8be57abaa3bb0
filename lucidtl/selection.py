"""One syntax for choosing channels, used by every command and callback (no TensorFlow here).

    7            channel 7
    0:8          channels 0..7 (a Python slice: 0:8:2, :8, 504: work too)
    1,5,9        a list
    all          every channel of the layer
    Mixed_4c:0:8,Mixed_5b:3     layer-qualified, where several layers are meant
    Mixed_4c:1,5,9              a bare item continues the previous layer's list
"""
import re

from lucidtl.errors import ChannelRangeError, InvalidArgumentError

HINT = "use e.g. 7, 0:8, 1,5,9 or all"
QUALIFIED_HINT = "write layer:channels, e.g. Mixed_4c:3, Mixed_4c:0:8, Mixed_4c:all or Mixed_4c:1,5,9"
_SLICE = re.compile(r"\d*:\d*(:\d+)?")
_INDEX = re.compile(r"\d+")


def is_selection(text):
    """Whether text (one comma item) is a channel selection without a layer."""
    text = text.strip()
    return text == "all" or bool(_INDEX.fullmatch(text) or _SLICE.fullmatch(text))


def check_syntax(channels):
    """The error parse_channels would raise for a malformed spec, without knowing the layer's size."""
    parse_channels(channels, None)


def parse_channels(channels, count):
    """"0:8", "3", 3, "1,5,9", (1, 5, 9) or "all" -> a list of channel indices checked against count
    (count None: only the syntax is checked, and "all" / open slices give [])."""
    if isinstance(channels, str):
        text = channels.strip()
        if text == "all":
            out = list(range(count or 0))
        elif _SLICE.fullmatch(text):
            parts = ([int(p) if p else None for p in text.split(":")] + [None])[:3]
            if count is None:
                return list(range(parts[0] or 0, parts[1], parts[2] or 1)) if parts[1] is not None else []
            if parts[1] is not None and parts[1] > count:
                raise ChannelRangeError(f"channel range {text!r} goes beyond the layer's {count} channels "
                                        f"(0..{count - 1})")
            out = list(range(count))[slice(*parts)]
            if not out:
                raise ChannelRangeError(f"channel range {text!r} is empty for a layer of {count} channels")
        elif re.fullmatch(r"\d+(\s*,\s*\d+)*", text):
            out = [int(p) for p in text.split(",")]
        else:
            raise InvalidArgumentError(f"cannot read channels {channels!r}; {HINT}")
    elif hasattr(channels, "__index__") and not isinstance(channels, bool):  # int, numpy integers
        out = [int(channels)]
    elif isinstance(channels, (list, tuple)) and channels and all(
            hasattr(c, "__index__") and not isinstance(c, bool) for c in channels):
        out = [int(c) for c in channels]
    else:
        raise InvalidArgumentError(f"cannot read channels {channels!r}; {HINT}")
    if count is not None:
        bad = [c for c in out if not 0 <= c < count]
        if bad:
            raise ChannelRangeError(
                f"channel {bad[0]} is out of range: the layer has {count} channels (0..{count - 1})")
    return out


def _is_open(sel):
    """Whether a selection needs the layer's size: `all`, or a range without an end (504:, 4::2)."""
    sel = sel.strip()
    return sel == "all" or sel.split(":")[1:2] == [""]


def _groups(spec):
    """"Mixed_4c:0:8,Mixed_5b:3" -> [(layer, selection text)], the syntax checked."""
    groups, layer = [], None
    for item in [p.strip() for p in spec.split(",")]:
        if not item:
            continue
        head, sep, rest = item.partition(":")
        if sep and not _INDEX.fullmatch(head) and head:
            # the layer name ends at the first ':' followed by a selection (names have no ':')
            layer, sel = head, rest
        elif layer is not None and is_selection(item):
            sel = item
        else:
            raise InvalidArgumentError(f"cannot read channel {item!r}; {QUALIFIED_HINT}")
        if not is_selection(sel):
            raise InvalidArgumentError(f"cannot read channel {item!r}; {QUALIFIED_HINT}")
        groups.append((layer, sel))
    if not groups:
        raise InvalidArgumentError(f"no channels given; {QUALIFIED_HINT}")
    return groups


def needs_sizes(spec):
    """Whether a layer-qualified spec holds `all` or an open range, so that parsing it needs count_of."""
    return isinstance(spec, str) and any(_is_open(sel) for _, sel in _groups(spec))


def parse_layer_channels(spec, count_of=None):
    """"Mixed_4c:0:8,Mixed_5b:3" (or [(layer, channel)] pairs) -> [(layer, channel)], in order, no repeats.

    count_of(layer) -> the layer's channel count; without it only the syntax is checked and "all" or an
    open range (Mixed_4c:504:) is an error."""
    if not isinstance(spec, str):
        items = list(spec) if isinstance(spec, (list, tuple)) else [spec]
        if items and all(isinstance(i, (list, tuple)) and len(i) == 2 for i in items):
            pairs = [(str(layer), int(c)) for layer, c in items]
            return _checked(pairs, count_of)
        spec = ",".join(str(i) for i in items)
    pairs = []
    for layer, sel in _groups(spec):
        if count_of is None and _is_open(sel):
            continue  # syntax only: the size comes with the model (see needs_sizes)
        pairs += [(layer, c) for c in parse_channels(sel, None if count_of is None else count_of(layer))]
    return list(dict.fromkeys(pairs))


def _checked(pairs, count_of):
    if count_of is not None:
        for layer, c in pairs:
            parse_channels(c, count_of(layer))
    return list(dict.fromkeys(pairs))
