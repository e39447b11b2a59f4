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


def task_info_of(args):
    """``--task-info FILE`` (a table: task, lower, upper, higher_is_better, chance) and
    ``--lower-is-better TASK ...`` as one task_info table (None without either)."""
    import pandas as pd

    from cppjax.data.tables import read_table
    from cppjax.errors import DataError

    info = None
    if args.task_info:
        t = read_table(args.task_info, label_column=None, sep=args.sep)
        info = t.frame.copy()
        info.index = t.row_labels
        if info.empty and not len(info.index):
            raise DataError(f"{args.task_info}: no task in --task-info")
    for task in args.lower_is_better or ():
        if info is None:
            info = pd.DataFrame(columns=["higher_is_better"])
        info.loc[task, "higher_is_better"] = False
    return info


def add_normalization_arg(group) -> None:
    group.add_argument("--normalization", choices=["auto", "task_minmax", "task_logit"],
                       default="auto", help="how bounded tasks are modelled: auto (default: "
                       "the logit for the pmf_* methods, the table's own otherwise), "
                       "task_minmax, task_logit")


def normalization_for(sm, args):
    """The table re-normalised for ``--method``: a percent or fraction table's bounded tasks
    through the logit for the methods whose model prefers it (the PMF methods:
    ``ModelSpec.preferred_normalization``, decision 0023), as ``--normalization`` says; the line
    printed when it changes."""
    kind = getattr(args, "normalization", "auto")
    if kind == "auto":
        kind = preferred_normalization(getattr(args, "method", None))
    new = sm.renormalized(kind)
    if new is not sm:
        print(f"bounded tasks modelled through the "
              f"{'logit' if new.normalization.kind == 'task_logit' else 'min-max'} of their "
              f"place between their bounds (--normalization {new.normalization.kind}; "
              f"docs/decisions/0023-logit-for-pmf.md)")
    return new


def preferred_normalization(method: str | None) -> str | None:
    """The normalisation the model behind a method name prefers under its inference (None: the
    table's own; decision 0025)."""
    from cppjax.models.registry import METHODS, make_spec

    if method not in METHODS:
        return None
    spec, inference = make_spec(method)
    return spec.normalization_for(inference)
