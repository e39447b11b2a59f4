"""Checks shared by the subcommands of the ``cppjax`` command line."""

from __future__ import annotations

from pathlib import Path


def check_common(args):
    """Positive counts, a level in (0, 1), a writable --out: checked before any work."""
    for k in ("samples", "warmup", "chains", "steps", "seeds", "folds"):
        v = getattr(args, k, None)
        if v is not None and v < 1:
            raise ValueError(f"--{k} must be a positive integer; got {v}")
    k = getattr(args, "k", None)
    if k is not None and k < 0:
        raise ValueError(f"--k (scores revealed or evaluations planned) must be 0 or more; "
                         f"got {k}")
    level = getattr(args, "level", None)
    if level is not None and not 0.0 < level < 1.0:
        raise ValueError(f"--level must be in (0, 1), e.g. 0.9 for 90% intervals; got {level}")
    out = getattr(args, "out", None)
    if out is not None:  # a folder we cannot write fails now, not after the fit
        import os

        out = Path(out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"--out {out}: cannot create the output folder "
                             f"({e.strerror})") from None
        if not out.is_dir() or not os.access(out, os.W_OK):
            raise ValueError(f"--out {out}: not a writable folder")


def refuse_overwrite(args, names) -> None:
    """Outputs never silently replace an earlier run's: refuse unless ``--overwrite``."""
    there = [n for n in names if (Path(args.out) / n).exists()]
    if there and not args.overwrite:
        raise ValueError(f"--out {args.out} already holds {', '.join(there)} from an earlier "
                         f"run: pass --overwrite to replace them, or choose another --out")
