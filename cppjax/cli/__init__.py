"""The command line: ``cppjax predict | evaluate | rank | plan | cod ...`` (the top layer)."""

from cppjax.cli.main import main

__all__ = ["main"]
