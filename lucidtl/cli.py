"""Shared `fire` entry point: user errors become one line on stderr and exit code 2."""
import sys

from lucidtl.errors import LucidtlError


def run(commands, default, argv=None):
    """commands: {name: function}; `default` runs when argv does not start with a command name."""
    import fire

    argv = list(sys.argv[1:] if argv is None else argv)
    fn = commands[default]
    if argv and argv[0] in commands:
        fn, argv = commands[argv[0]], argv[1:]
    try:
        fire.Fire(fn, command=argv, name=f"{default}")
    except LucidtlError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
