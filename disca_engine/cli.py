"""Command-line entry point: ``disca-engine <command> ...``.

Each command lives in its own module exposing ``add_parser(subparsers)``; the parser
sets ``func`` to the function that runs it. Modules are imported lazily so that the
numpy-only commands never pay for (or need) TensorFlow.
"""
import argparse
import importlib
import sys

from . import __version__
from .errors import EngineError, os_error_line

# command name -> module (relative to this package) that defines add_parser()
COMMANDS = {
    "pick": ".commands.pick",
    "extract": ".commands.extract",
    "cluster": ".commands.cluster",
    "predict": ".commands.predict",
    "simulate": ".commands.simulate",
    "report": ".commands.report",
    "subset": ".commands.subset",
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="disca-engine",
        description="Template-free picking and DISCA unsupervised subtomogram clustering.")
    parser.add_argument("--version", action="version", version=f"disca-engine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, modname in COMMANDS.items():
        try:
            module = importlib.import_module(modname, __package__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(__package__ + ".commands"):
                continue  # command not present in this build
            raise
        module.add_parser(sub)
    return parser


# commands that load TensorFlow: its known start-up noise is filtered out of stderr
TENSORFLOW_COMMANDS = ("cluster", "predict", "report")


def main(argv=None):
    args = build_parser().parse_args(argv)
    restore = lambda: None  # noqa: E731
    if args.command in TENSORFLOW_COMMANDS and argv is None:  # the program, not a test call
        from .tflog import quiet_tensorflow
        restore = quiet_tensorflow()
    try:
        result = args.func(args)
    except EngineError as exc:
        print(f"disca-engine {args.command}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # a full disk or read-only mount met where no command expected it
        print(f"disca-engine {args.command}: error: {os_error_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"disca-engine {args.command}: interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        restore()  # before any traceback is printed, so none is lost in the filter
    sys.exit(0 if result is None else int(result))
