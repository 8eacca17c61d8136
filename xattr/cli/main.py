"""The ``xattr`` command: the parser, the subcommands and the one-line errors.

A subcommand is one module with a ``register(subparsers)`` function that adds its
parser and sets ``run`` (``run(args) -> exit code``); :data:`COMMANDS` lists them.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from xattr.cli import compare, demo, explain
from xattr.cli.errors import RunError, UsageError, one_line

COMMANDS = (explain.register, compare.register, demo.register)

DESCRIPTION = """\
Fast feature attributions for PyTorch models on the command line: explain a model's
outputs with any of xattr's explainers, certify them with MuS smoothing, and compare
xattr with Captum and shap on your own model."""

EPILOG = """\
examples:
  xattr explain model.pt2 x.npy --method kernelshap --n-samples 200 --out attr.pt
  xattr explain mypkg.nets:make_cnn images/ --state-dict w.pt --image-size 32 \\
      --method ig --target pred --out ig.pt
  xattr compare model.pt2 x.npy --methods ig,kernelshap,svs --against captum,shap

Run "xattr COMMAND --help" for each command's options. Errors are one line on
stderr and a non-zero exit code; --debug shows the traceback.
"""


class Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are :class:`UsageError` (one line), not
    argparse's usage text and exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see: {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The ``xattr`` parser with every subcommand of :data:`COMMANDS`."""
    from xattr import __version__

    parser = Parser(
        prog="xattr",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"xattr {__version__}")
    common = Parser(add_help=False)
    common.add_argument(
        "--quiet", "-q", action="store_true", help="no progress bars or notes on stderr"
    )
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    original = sub.add_parser

    def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return original(name, parents=[common], **kwargs)

    sub.add_parser = add_parser  # type: ignore[method-assign]
    for register in COMMANDS:
        register(sub)
    return parser


def _one_line(e: BaseException) -> str:
    if isinstance(e, (UsageError, RunError)):
        return " ".join(str(e).split())
    return one_line(e, 500)


def _show_warning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    print(f"xattr: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``xattr`` command with ``argv`` (default: ``sys.argv[1:]``) and returns
    its exit code: 0 on success, 2 for a mistake in the command or its files, 1 for a
    failure while explaining; errors are one line on stderr (``--debug``: the
    traceback too).

    Example:
        >>> main(["explain", "no-such-model.pt2", "x.npy", "-m", "ig", "--out", "a.pt"])
        2
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    saved = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit's, at load
            warnings.showwarning = _show_warning
            args = build_parser().parse_args(args_list)
            if args.quiet:
                warnings.simplefilter("ignore")
            return int(args.run(args))
    except SystemExit as e:  # --help, --version
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:
        print("xattr: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if debug:
            traceback.print_exc()
        print(f"xattr: error: {_one_line(e)}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    finally:
        warnings.showwarning = saved
