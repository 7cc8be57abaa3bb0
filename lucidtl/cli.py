"""Shared `fire` entry point: user errors become one line on stderr and exit code 2."""
import functools
import sys

from lucidtl.errors import InvalidArgumentError, LucidtlError


def printing(fn, report=print):
    """A command that runs fn and hands its result to report; fire sees fn's signature and doc."""

    @functools.wraps(fn)
    def command(*args, **kwargs):
        report(fn(*args, **kwargs))

    return command


def choice(flag, value, options):
    """value, if it is one of options; else a one-line error naming --flag and the choices."""
    if value not in options:
        raise InvalidArgumentError(f"unknown --{flag} {value!r}; choose one of {', '.join(options)}")
    return value


def integer(flag, value, minimum=1, optional=False):
    """value as an int, if it is an integer >= minimum (or None when optional); else a one-line error."""
    import numbers

    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InvalidArgumentError(f"--{flag} must be an integer >= {minimum}, got {value!r}")
    return int(value)


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
