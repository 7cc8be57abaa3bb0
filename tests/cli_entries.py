"""The eight `python -m lucidtl.X` entry points and their sub-commands, found without importing TensorFlow."""
import importlib

from lucidtl import cli

MODULES = ("render", "train", "figures", "atlas", "analyze", "stylegan", "export", "study")
NAMES = {"train": "lucidtl.train.__main__", "atlas": "lucidtl.atlas.__main__", "export": "lucidtl.export.__main__",
         "study": "lucidtl.study.__main__"}
ENTRY_MODULES = tuple(NAMES.get(m, f"lucidtl.{m}") for m in MODULES)  # the modules that `python -m` runs


def entry(module):
    """(main, {sub-command: command}) of `python -m lucidtl.<module>`, read from the commands main registers."""
    name = NAMES.get(module, f"lucidtl.{module}")
    mod = importlib.import_module(name)
    seen = {}

    def capture(commands, default, argv=None, prog=None, aliases=None):
        seen.update(commands)

    real = cli.run
    cli.run = capture
    try:
        mod.main([])
    finally:
        cli.run = real
    return mod.main, seen


def all_commands():
    for module in MODULES:
        main, commands = entry(module)
        for sub, command in commands.items():
            yield module, main, commands, sub, command
