"""The one command line of every `python -m lucidtl.X` (fire is the front end; this module checks around it).

Before any work, and without importing TensorFlow, the whole command line is checked against the chosen
function's signature and docstring: the sub-command exists, every flag is a parameter (else the closest
one is named), every value has its type and range. Help is printed from the same signature and docstring.
What a command raises for bad input (LucidtlError, OSError, corrupt JSON / arrays, TensorFlow errors) ends
as one line on stderr and exit code 2.

A command's docstring describes its flags in an "Args:" block, one entry a flag:

    Args:
        size (int >= 16): side of the rendered images in px
        transforms (standard|distill|none): the transformation robustness set

A type written there wins; else the shared VOCABULARY names it; else the default's type does. Types: bool,
int, number (with ">= N", "> N" or "in [A, B]"), str, any (handed to fire as typed), a|b|c (a choice), list
(comma list), int list, range (LO,HI), weights (imagenet | random | weights files, existing),
channels (7 | 0:8 | 1,5,9 | all), layer channels (Mixed_4c:0:8,...), checkpoint
(N | last), run (existing folders), file, files (existing), dataset, folder (an output folder that can be made).
"""
import ast
import difflib
import functools
import importlib
import importlib.util
import inspect
import os
import re
import sys

from lucidtl.errors import InvalidArgumentError, LucidtlError

# ---- the vocabulary: one meaning and one type per flag name, in every command --------------------------

VOCABULARY = {  # flag -> (type, meaning); README's flag table has one row per entry
    "run": ("run", "a training run folder (what `lucidtl.train --out` wrote)"),
    "runs": ("run", "training run folders, comma separated (several runs at once)"),
    "checkpoint": ("checkpoint", "one saved iteration of --run (`10`), or `last`"),
    "checkpoints": ("int list", "saved iterations of --run, comma separated (default: all)"),
    "dataset": ("dataset", "celeb_a | oxford_iiit_pet | oxford_flowers102 | folder:PATH (a folder per class)"),
    "model": ("str", "inception_v1 | a .keras or .h5 file | a SavedModel folder | keras.applications.X | "
                     "a dotted builder"),
    "weights": ("weights", "imagenet | random | a weights file (.weights.h5, .keras, slim .ckpt / .tar.gz); "
                           "several files, comma separated, where a command walks checkpoints of --model"),
    "input_range": ("range", "LO,HI: the value range the model expects its input in (0,255, -1,1); default: "
                             "the model's known range, else 0,1"),
    "custom_objects": ("str", "module[:Name,...]: imported (its Keras classes registered) before a .keras "
                              "or .h5 model file is loaded"),
    "layer": ("str", "one layer name (`python -m lucidtl.render layers` lists them)"),
    "layers": ("list", "layer names, comma separated, or `all`"),
    "channel": ("int >= 0", "one channel index"),
    "classes": ("list", "the output's classes: all, indices (0,2) or names (tabby,pug), comma separated"),
    "channels": ("channels", "7 | 0:8 | 1,5,9 | all; `Mixed_4c:0:8,Mixed_5b:3` where several layers are meant"),
    "batch_size": ("int >= 1", "images per batch (optimised or trained together)"),
    "size": ("int >= 1", "side of the rendered images in px"),
    "image_size": ("int >= 1", "side the dataset's images are resized to, in px"),
    "steps": ("int >= 0", "optimisation steps of a render"),
    "grid_size": ("int >= 1", "cells per side of an activation atlas's grid"),
    "aligned": ("bool", "render a channel at all checkpoints of a run in one optimisation (aligned strips)"),
    "seed": ("int >= 0", "random seed: the same seed gives the same images"),
    "learning_rate": ("number > 0", "the optimiser's learning rate"),
    "out": ("folder", "the output folder (created; a file there is an error)"),
    "overwrite": ("bool", "replace what --out holds instead of resuming it"),
    "progress": ("bool", "show progress bars"),
    "dry_run": ("bool", "check the command line, print the plan, write nothing"),
    "precision": ("float32|bfloat16|float16", "what the network computes in: float32 (Lucid's numbers) or a lower "
                  "precision, faster on hardware made for it (docs/guide/precision.md)"),
}
ALIASES = {"batch": "batch_size", "lr": "learning_rate", "data": "dataset", "iterations": "checkpoints",
           "run_dir": "run"}  # old spellings, accepted for one release
ALIAS_NOTE = "note: --{old} is now --{new}"
TRUE, FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def flag(name):
    return "--" + name.replace("_", "-")


# ---- commands ------------------------------------------------------------------------------------------

class Lazy:
    """A command named "module:function": described from its source file, imported only to run."""

    def __init__(self, target, report=None):
        self.target, self.report = target, report
        self.__name__ = target.rsplit(":", 1)[-1]

    def __call__(self, *args, **kwargs):
        module, name = self.target.split(":")
        fn = getattr(importlib.import_module(module), name)
        result = fn(*args, **kwargs)
        if self.report is None:
            return result
        self.report(result)
        return None


def printing(fn, report=print):
    """A command that runs fn and hands its result to report; fire sees fn's signature and doc.
    fn may be "module:function" (imported when the command runs, so that help and checks stay fast)."""
    if isinstance(fn, str):
        return Lazy(fn, report)

    @functools.wraps(fn)
    def command(*args, **kwargs):
        report(fn(*args, **kwargs))

    return command


class Param:
    def __init__(self, name, default, required, kind, doc):
        self.name, self.default, self.required, self.kind, self.doc = name, default, required, kind, doc


class Spec:
    """What the checker and the help printer know of a command."""

    def __init__(self, name, params, doc, varkw=False):
        self.name, self.params, self.doc, self.varkw = name, params, doc or "", varkw

    @property
    def summary(self):
        return self.doc.strip().split("\n\n")[0].replace("\n", " ") if self.doc.strip() else ""


_UNKNOWN = object()  # a default the source does not spell as a literal


def _docs(doc):
    """{param: (type or None, meaning)} from an Args: block."""
    out, current, indent = {}, None, None
    lines = (doc or "").splitlines()
    in_args = False
    for line in lines:
        if line.strip() in ("Args:", "Flags:"):
            in_args, current = True, None
            continue
        if not in_args:
            continue
        if not line.strip():
            current = None
            continue
        m = re.match(r"^(\s*)([a-z_][a-z0-9_]*)(?:\s*\(([^)]*)\))?\s*:\s?(.*)$", line)
        width = len(line) - len(line.lstrip())
        if m and (indent is None or width <= indent):
            indent = width
            current = m.group(2)
            out[current] = [m.group(3).strip() if m.group(3) else None, m.group(4).strip()]
        elif current is not None and width > (indent or 0):
            out[current][1] += " " + line.strip()
        elif width <= (indent or 0):
            in_args = False
    return {k: (t, " ".join(v.split())) for k, (t, v) in out.items()}


def _kind(name, default, typed):
    if typed:
        return typed
    if name in VOCABULARY:
        return VOCABULARY[name][0]
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "number"
    return "str"


def _spec_from(name, params, doc, varkw=False):
    docs = _docs(doc)
    out = {}
    for pname, default, required in params:
        typed, meaning = docs.get(pname, (None, ""))
        if not meaning and pname in VOCABULARY:
            meaning = VOCABULARY[pname][1]
        out[pname] = Param(pname, default, required, _kind(pname, default, typed), meaning)
    return Spec(name, out, doc, varkw)


def _constant(node, module_file, depth=0):
    """The value of a default written in source: a literal, a module constant, or one imported by name."""
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        pass
    if isinstance(node, ast.Name) and depth < 3:
        tree = _parse(module_file)
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == node.id
                                                    for t in stmt.targets):
                return _constant(stmt.value, module_file, depth + 1)
            if isinstance(stmt, ast.ImportFrom) and stmt.module and any(
                    (a.asname or a.name) == node.id for a in stmt.names):
                real = next(a.name for a in stmt.names if (a.asname or a.name) == node.id)
                path = _module_file(stmt.module)
                if path:
                    return _constant(ast.Name(id=real), path, depth + 1)
    return _UNKNOWN


@functools.lru_cache(maxsize=None)
def _parse(path):
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read(), path)


def _module_file(module):
    """The source file of a module, importing only its parent packages (kept light)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec and spec.origin and spec.origin.endswith(".py") else None


def describe(command, name):
    """The Spec of a command (a function, a printing() wrapper, or a Lazy)."""
    if isinstance(command, Lazy):
        module, fname = command.target.split(":")
        path = _module_file(module)
        fn = next(s for s in _parse(path).body if isinstance(s, ast.FunctionDef) and s.name == fname)
        args = fn.args.args
        defaults = [None] * (len(args) - len(fn.args.defaults)) + list(fn.args.defaults)
        params = [(a.arg, None if d is None else _constant(d, path), d is None) for a, d in zip(args, defaults)]
        params += [(a.arg, _constant(d, path) if d is not None else None, d is None)
                   for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults)]
        return _spec_from(name, params, ast.get_docstring(fn), fn.args.kwarg is not None)
    fn = inspect.unwrap(command)
    sig = inspect.signature(fn)
    params = [(p.name, None if p.default is p.empty else p.default, p.default is p.empty)
              for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    varkw = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    return _spec_from(name, params, inspect.getdoc(fn), varkw)


# ---- values --------------------------------------------------------------------------------------------

def _number(text, integer):
    try:
        return int(text) if integer else float(text)
    except ValueError:
        return None


def convert(param, text):
    """The value of --param from its text, checked; an InvalidArgumentError names the flag and the fix."""
    kind, f = param.kind, flag(param.name)
    if text is None or (param.default is None and text in ("None", "none") and kind != "str"):
        return None
    if kind == "any":
        return _Raw(text)
    if kind == "bool":
        low = text.lower()
        if low in TRUE or low in FALSE:
            return low in TRUE
        raise InvalidArgumentError(f"{f} is a yes/no flag: write {f} or --no{param.name.replace('_', '-')}, "
                                   f"not {f} {text}")
    m = re.fullmatch(r"(int|number)(?:\s*(>=|>)\s*(-?[\d.]+)|\s+in\s+\[(-?[\d.]+),\s*(-?[\d.]+)\])?", kind)
    if m:
        integer = m.group(1) == "int"
        value = _number(text, integer)
        what = "an integer" if integer else "a number"
        if value is None or (not integer and value != value):
            raise InvalidArgumentError(f"{f} must be {what}, got {text!r}")
        if m.group(2):
            bound = float(m.group(3))
            if value < bound or (m.group(2) == ">" and value == bound):
                raise InvalidArgumentError(f"{f} must be {what} {m.group(2)} {m.group(3)}, got {text}")
        if m.group(4) and value < float(m.group(4)):
            raise InvalidArgumentError(f"{f} must be {what} >= {m.group(4)}, got {text}")
        if m.group(4) and value > float(m.group(5)):
            raise InvalidArgumentError(f"{f} must be {what} <= {m.group(5)}, got {text}")
        return value
    if kind == "range":
        parts = [_number(p.strip(), False) for p in text.split(",")]
        if len(parts) != 2 or None in parts or not parts[0] < parts[1]:
            raise InvalidArgumentError(f"{f} must be two numbers LO,HI with LO < HI (e.g. 0,255 or -1,1), got {text!r}")
        return parts
    if kind == "checkpoint":
        if text == "last" or text == "final" or re.fullmatch(r"\d+", text):
            return text if text in ("last", "final") else int(text)
        raise InvalidArgumentError(f"{f} must be a saved iteration (e.g. 10) or last, got {text!r}")
    if kind in ("list", "int list", "files"):
        items = split_list(text)
        if not items:
            raise InvalidArgumentError(f"{f} needs at least one value (a comma list), got {text!r}")
        if kind == "int list":
            bad = [p for p in items if not re.fullmatch(r"\d+", p)]
            if bad:
                raise InvalidArgumentError(f"{f}: {bad[0]!r} is not a non-negative integer; write integers >= 0, "
                                           "comma separated")
            return [int(p) for p in items]
        if kind == "files":
            for p in items:
                if not os.path.isfile(p):
                    raise InvalidArgumentError(f"cannot read {f} file {p}: it does not exist")
        return items
    if kind in ("channels", "layer channels"):
        from lucidtl import selection

        if kind == "layer channels":
            selection.parse_layer_channels(text)
        else:
            selection.check_syntax(text)
        return text
    if kind == "run":
        for p in [p for p in text.split(",") if p]:
            if not os.path.isdir(p):
                raise InvalidArgumentError(f"run folder {p} does not exist; pass the --out folder of a training run")
        return text
    if kind == "dataset":
        if text.startswith("folder:") and not os.path.isdir(text[len("folder:"):]):
            raise InvalidArgumentError(f"image folder {text[len('folder:'):]} does not exist; {f} folder:PATH "
                                       "takes a folder with one sub-folder of images per class")
        if text.endswith((".npy", ".npz")) and not os.path.isfile(text):
            raise InvalidArgumentError(f"{f}: file {text} does not exist")
        return text
    if kind == "weights":
        items = split_list(text)
        if not items:
            raise InvalidArgumentError(f"{f} needs a value: imagenet, random or a weights file, got {text!r}")
        for p in items:  # a slim checkpoint is a prefix (model.ckpt -> model.ckpt.index)
            if p not in ("imagenet", "random") and not os.path.exists(p) and not os.path.exists(p + ".index"):
                raise InvalidArgumentError(f"cannot read {f} file {p}: it does not exist")
        return text
    if kind == "file":
        if not os.path.isfile(text):
            raise InvalidArgumentError(f"cannot read {f} file {text}: it does not exist")
        return text
    if kind == "folder":
        check_out(text, f)
        return text
    if "|" in kind:
        options = [o.strip() for o in kind.split("|")]
        if text not in options:
            near = difflib.get_close_matches(text, options, n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            raise InvalidArgumentError(f"unknown {f} {text!r}; {hint}choose one of {', '.join(options)}")
        return text
    return text  # str, path


class _Raw(str):
    """Text handed to fire unquoted: fire reads it as it always did (numbers, booleans, strings)."""


FILE_SUFFIXES = (".csv", ".json", ".npz", ".npy", ".png", ".jpg", ".jpeg", ".pdf", ".svg", ".html", ".txt", ".pkl",
                 ".keras", ".h5", ".pb", ".zip", ".tar", ".gz")


def check_out(path, name="--out"):
    """An output folder that can be made: not a file, not under a file (or /dev/null), writable, and not
    named like a file (`--out reuse.csv` means a file; every command's --out is a folder: one rule)."""
    given = os.fspath(path)
    path = os.path.abspath(given)
    if os.path.exists(path) and not os.path.isdir(path):
        raise InvalidArgumentError(f"{name} {path} is a file, not a folder; choose a folder")
    if not os.path.isdir(path) and given.lower().endswith(FILE_SUFFIXES):
        stem = os.path.splitext(given.rstrip(os.sep))[0] or "out"
        raise InvalidArgumentError(f"{name} {given} is named like a file, but {name} is always a folder (the "
                                   f"command writes its files inside it); pass a folder such as {name} {stem}")
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise InvalidArgumentError(f"{name} {path} cannot be made: {parent} is not a folder; choose another {name}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidArgumentError(f"{name} {path} cannot be written: {parent} is not writable; choose another")
    return path


def integer(flag_name, value, minimum=1, optional=False):
    """value as an int, if it is an integer >= minimum (or None when optional); else a one-line error."""
    import numbers

    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InvalidArgumentError(f"--{flag_name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def choice(flag_name, value, options):
    """value, if it is one of options; else a one-line error naming --flag and the choices."""
    if value not in options:
        raise InvalidArgumentError(f"unknown --{flag_name} {value!r}; choose one of {', '.join(options)}")
    return value


def split_list(value):
    """A comma list flag ("a,b", ("a", "b"), ["a"]) -> [str]; None stays None."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else [str(v) for v in
                                                             (value if isinstance(value, (list, tuple)) else [value])]
    return [i.strip() for i in items if i.strip()]


# ---- the command line ----------------------------------------------------------------------------------

class Call:
    def __init__(self, name, command, spec, values, dry_run, help_):
        self.name, self.command, self.spec, self.values = name, command, spec, values
        self.dry_run, self.help = dry_run, help_


def _prog():
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None) or ""
    if name.startswith("lucidtl"):
        return "python -m " + name.removesuffix(".__main__")
    return None


def parse(commands, default, argv, notes, aliases=None):
    """Check argv against the chosen command: a Call, or an InvalidArgumentError naming what is wrong."""
    argv = list(argv)
    help_ = any(a in ("--help", "-h") for a in argv)
    name = default
    if argv and argv[0] in commands:
        name, argv = argv[0], argv[1:]
    elif argv and not argv[0].startswith("-") and len(commands) > 1:
        near = difflib.get_close_matches(argv[0], list(commands), n=1)
        hint = f"did you mean {near[0]}? " if near else ""
        raise InvalidArgumentError(f"unknown command {argv[0]!r}; {hint}commands: {', '.join(commands)}")
    elif help_ and len(commands) > 1 and (not argv or argv[0] in ("--help", "-h")):
        return Call(None, None, None, {}, False, True)
    spec = describe(commands[name], name)
    if help_:
        return Call(name, commands[name], spec, {}, False, True)
    params = spec.params
    values, positional, dry_run, i = {}, [], False, 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("--") or arg == "--":
            if arg.startswith("-") and not re.fullmatch(r"-[\d.]+.*", arg):
                raise InvalidArgumentError(f"unknown flag {arg}; flags start with --")
            positional.append(arg)
            continue
        key, eq, text = arg[2:].partition("=")
        key = key.replace("-", "_")
        if key == "dry_run" and "dry_run" not in params:
            dry_run = (text.lower() in TRUE) if eq else True
            continue
        negated = False
        if key not in params and key.startswith("no") and key[2:] in params and params[key[2:]].kind == "bool":
            key, negated = key[2:], True
        table = {**ALIASES, **(aliases or {})}
        if key not in params and key in table and table[key] in params:
            notes.append(ALIAS_NOTE.format(old=key.replace("_", "-"), new=table[key].replace("_", "-")))
            key = table[key]
        if key not in params:
            if spec.varkw:
                values[key] = _Raw(text) if eq else _Raw("True")
                continue
            near = difflib.get_close_matches(key, list(params), n=1, cutoff=0.6)
            hint = f"; did you mean {flag(near[0])}?" if near else f"; {name} takes {', '.join(map(flag, params))}"
            raise InvalidArgumentError(f"unknown flag {flag(key)}{hint}")
        p = params[key]
        if negated:
            if eq:
                raise InvalidArgumentError(f"--no{key.replace('_', '-')} takes no value")
            values[key] = False
            continue
        if not eq:
            if p.kind == "bool":
                nxt = argv[i].lower() if i < len(argv) else None
                if nxt is not None and (nxt in TRUE or nxt in FALSE):
                    text, i = argv[i], i + 1
                elif nxt is not None and not argv[i].startswith("--"):
                    raise InvalidArgumentError(f"{flag(key)} is a yes/no flag: write {flag(key)} or "
                                               f"--no{key.replace('_', '-')}, not {flag(key)} {argv[i]}")
                else:
                    text = "true"
            elif i < len(argv) and not (argv[i].startswith("--") and len(argv[i]) > 2):
                text, i = argv[i], i + 1
            else:
                raise InvalidArgumentError(f"{flag(key)} needs a value")
        values[key] = convert(p, text)
    free = [p for p in params if p not in values]
    if len(positional) > len(free):
        raise InvalidArgumentError(f"unexpected argument {positional[len(free)]!r} for {name}; "
                                   "values go after their --flag")
    for pname, text in zip(free, positional):
        values[pname] = convert(params[pname], text)
    missing = [p for p in params.values() if p.required and p.name not in values]
    if missing:
        raise InvalidArgumentError(f"{name} needs {flag(missing[0].name)}"
                                   + (f" ({missing[0].doc})" if missing[0].doc else ""))
    if "out" in params and "out" not in values and params["out"].kind == "folder" and isinstance(
            params["out"].default, str):
        check_out(params["out"].default)
    return Call(name, commands[name], spec, values, dry_run, False)


def _fire_arg(value):
    if isinstance(value, _Raw):
        return str(value)
    return repr(value)


def help_text(commands, default, call, prog=None):
    prog = prog or _prog() or "python -m lucidtl"
    if call.name is None:
        width = max(map(len, commands))
        lines = [f"usage: {prog} COMMAND [--flag VALUE ...]", "", f"commands (default: {default}):"]
        for name, command in commands.items():
            lines.append(f"  {name.ljust(width)}  {describe(command, name).summary}")
        lines += ["", f"`{prog} COMMAND --help` describes a command's flags."]
        return "\n".join(lines)
    spec = call.spec
    sub = "" if len(commands) == 1 else f" {spec.name}"
    lines = [f"usage: {prog}{sub} [--flag VALUE ...]", "", f"{spec.name}: {spec.summary}", "", "flags:"]
    rows = [(flag(p.name) + ("" if p.kind == "bool" else f" {_metavar(p)}"), p) for p in spec.params.values()]
    rows.append(("--dry-run", Param("dry_run", False, False, "bool", VOCABULARY["dry_run"][1])))
    width = max(len(r[0]) for r in rows)
    for text, p in rows:
        default = "required" if p.required else (
            "" if p.default is None or p.default is _UNKNOWN else f"default: {_show(p.default)}")
        kind = "" if p.kind in ("str", "any", "bool") else f"[{p.kind}] "
        tail = f" ({default})" if default else ""
        lines.append(f"  {text.ljust(width)}  {kind}{p.doc}{tail}".rstrip())
    lines += ["", "Every flag is also accepted with underscores; a yes/no flag is turned off with --no<flag>."]
    return "\n".join(lines)


def _metavar(p):
    return {"int list": "N,N", "list": "A,B", "channels": "CHANNELS", "layer channels": "LAYER:CHANNELS", "checkpoint": "N|last", "run": "PATH",
            "folder": "DIR", "file": "FILE", "files": "FILE,FILE", "range": "LO,HI", "weights": "WEIGHTS"}.get(
        p.kind, p.kind.split()[0].upper() if "|" not in p.kind else "CHOICE")


def _show(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


# ---- the error boundary --------------------------------------------------------------------------------

def _file_in(tb):
    """The name of the innermost open file (or path argument) in a traceback's frames, if any."""
    name = None
    while tb is not None:
        for key, value in tb.tb_frame.f_locals.items():
            if hasattr(value, "name") and hasattr(value, "mode") and isinstance(getattr(value, "name"), str):
                name = value.name
            elif key in ("path", "file", "filename", "fname") and isinstance(value, (str, os.PathLike)):
                name = os.fspath(value)
        tb = tb.tb_next
    return name


def _innermost(tb):
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    return last.tb_frame.f_code.co_filename if last else ""


def _tf_reason(message):
    """The informative line of a TensorFlow error message (not "Graph execution error:", node names, stacks)."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    useful = [line for line in lines if not line.endswith(":") and not line.startswith(("[[", "<", "Detected at"))]
    text = (useful or lines or [""])[0]
    return re.sub(r"^.*?(?:transformation with iterator: \S+: |[A-Z_]{6,}: )", "", text).split(" [[")[0][:200]


def user_error(e):
    """One line for an error bad input causes; None for what looks like a bug."""
    import json

    found = lucidtl_error(e)
    if found is not None:
        return found
    if isinstance(e, json.JSONDecodeError):
        where = _file_in(e.__traceback__)
        return (f"{where or 'a JSON file'} is not valid JSON ({e.msg}, line {e.lineno}); the file is corrupt: "
                "restore it or delete it and run again")
    if isinstance(e, OSError) and not type(e).__module__.startswith("tensorflow"):
        what = e.filename or _file_in(e.__traceback__)
        reason = e.strerror or str(e) or type(e).__name__
        return f"cannot use {what}: {reason}" if what else f"{reason}; check the paths you passed"
    if type(e).__module__.startswith(("tensorflow", "tsl")) and hasattr(e, "message"):
        return f"TensorFlow could not run this input ({type(e).__name__}: {_tf_reason(e.message)}); check the " \
               "input files and flags"
    inner = _innermost(e.__traceback__)
    if isinstance(e, (ValueError, EOFError, KeyError)) and any(
            s in inner for s in (f"{os.sep}numpy{os.sep}", f"{os.sep}PIL{os.sep}", f"{os.sep}h5py{os.sep}",
                                 f"{os.sep}pickle", f"{os.sep}zipfile", f"{os.sep}tarfile")):
        where = _file_in(e.__traceback__)
        return f"cannot read {where or 'an input file'}: {e}; the file is corrupt or of another kind"
    if type(e).__name__ == "UnpicklingError":
        return f"cannot read {_file_in(e.__traceback__) or 'a pickle'}: {e}; the file is corrupt"
    return None


_WRAPPERS = ("tensorflow", "tsl", "keras")  # modules whose errors may wrap the one a user caused


def _error_classes(cls=LucidtlError):
    return [cls] + [c for sub in cls.__subclasses__() for c in _error_classes(sub)]


def lucidtl_error(e):
    """The message of the LucidtlError behind `e`, else None: `e` itself, the one it was raised from, the one
    a TensorFlow / Keras error was raised while handling (autograph's StagingError keeps an error raised while
    a tf.function is traced as its context), or the one a TensorFlow error quotes by its full name
    ("lucidtl.errors.UnknownLayerError: ..." from a py_function or tf.data)."""
    seen, todo = set(), [e]
    while todo:
        x = todo.pop(0)
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, LucidtlError):
            return str(x)
        todo.append(x.__cause__)
        if type(x).__module__.startswith(_WRAPPERS):
            todo.append(x.__context__)
    if not type(e).__module__.startswith(_WRAPPERS):
        return None
    names = "|".join(sorted({re.escape(f"{c.__module__}.{c.__qualname__}") for c in _error_classes()},
                            key=len, reverse=True))
    quoted = re.findall(rf"(?:{names}): (.+)", str(getattr(e, "message", None) or e))
    return quoted[-1].strip() if quoted else None


def _one_line(text):
    text = " ".join(str(text).split())
    return text if len(text) <= 400 else text[:397] + "..."


@__import__("contextlib").contextmanager
def held_output():
    """Hold what the block prints (Keras' "Downloading data from ..."): shown when it succeeds, dropped when it
    fails, whose one-line error or note then says all."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield
    sys.stdout.write(buf.getvalue())


def quiet_tensorflow():
    """Import TensorFlow with its start-up log lines (written before logging is set up) dropped."""
    if "tensorflow" in sys.modules:
        return
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        import tensorflow  # noqa: F401
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # CUDA's own start-up lines come here
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        keep = [line for line in sink.read().decode(errors="replace").splitlines()
                if line.strip() and not re.match(r"^([IWE]\d{4} |WARNING: All log messages before absl)", line)]
    for line in keep:
        print(line, file=sys.stderr)


def run(commands, default, argv=None, prog=None, aliases=None):
    """commands: {name: function | printing(...)}; `default` runs when argv does not start with a command.

    Checks the whole command line first (exit 2, one line, nothing done), prints help for --help, a plan
    for --dry-run, then runs the command through fire; user errors end as one line and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    notes = []
    try:
        call = parse(commands, default, argv, notes, aliases)
    except LucidtlError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        sys.exit(2)
    for note in notes:
        print(note, file=sys.stderr)
    if call.help:
        _emit(help_text(commands, default, call, prog))
        sys.exit(0)
    if call.dry_run:
        _emit(plan(call, prog))
        return None
    import fire

    quiet_tensorflow()
    target = call.command

    def command(**kwargs):  # what fire calls: the values it reads back are exactly the checked ones
        target(**kwargs)

    args = [f"--{k}={_fire_arg(v)}" for k, v in call.values.items()]
    lost = _LostInterrupts()
    try:
        with lost:
            fire.Fire(command, command=args, name=prog or _prog() or default)
            lost.check()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - the boundary: bad input is one line, bugs keep their traceback
        message = user_error(e)
        if message is None:
            raise
        print(f"error: {_one_line(message)}", file=sys.stderr)
        sys.exit(2)


class _LostInterrupts:
    """A Ctrl-C is never lost. When SIGINT's KeyboardInterrupt is raised inside a weakref callback or a
    __del__ (a WeakKeyDictionary's `remove`, say), Python only prints "Exception ignored in ..." and goes on;
    here it is delivered to the main thread again, and a command that still ends normally ends as interrupted."""

    def __init__(self):
        self.seen, self._timers, self._previous = False, [], None

    def __enter__(self):
        self._previous = sys.unraisablehook
        sys.unraisablehook = self._hook
        return self

    def __exit__(self, *exc):
        sys.unraisablehook = self._previous
        for timer in self._timers:
            timer.cancel()
        return False

    def _hook(self, unraisable):
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            return self._previous(unraisable)
        import _thread
        import threading

        self.seen = True  # raised again in the main thread, outside the callback that swallowed it
        timer = threading.Timer(0.01, _thread.interrupt_main)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()
        return None

    def check(self):
        """Raise the KeyboardInterrupt a command swallowed and finished despite."""
        if self.seen:
            raise KeyboardInterrupt


def _emit(text):
    """print, quietly when the reader has gone (`--help | head`)."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def plan(call, prog=None):
    """What --dry-run prints: the command and every flag's value (given or default)."""
    lines = [f"{prog or _prog() or 'lucidtl'} {call.name}: the command line is valid; nothing was run"]
    for p in call.spec.params.values():
        value = call.values.get(p.name, p.default)
        source = "" if p.name in call.values else "  (default)"
        lines.append(f"  {flag(p.name)} = {'-' if value is None or value is _UNKNOWN else _show(value)}{source}")
    return "\n".join(lines)
