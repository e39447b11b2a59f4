"""What the labels of a score table say: which axis holds the models (:func:`orientation`), and
what kind of metric each task is (:func:`metric_kind`: its bounds and its direction).

Leaderboard exports come both ways round (HELM puts models in columns) and mix metrics (rates,
percentages, 1-5 ratings, bits per byte). A table read the wrong way round is silently wrong:
its metrics fitted as models and its intervals on the wrong scale. So the labels are read for
evidence, the decision is printed with the rule behind it, and where the evidence is weak or
contradictory the reader refuses rather than guesses (decision 0015).

Example:
    >>> o = orientation(["accuracy - MMLU", "EM - BoolQ", "ROUGE-2 - XSum"],
    ...                 ["meta-llama/Llama-2-7b", "gpt2-xl", "pythia-1.4b"])
    >>> o.models_as
    'columns'
    >>> k = metric_kind("WikiText - bits per byte", [0.71, 0.93, 1.2])
    >>> k.kind, k.lower, k.upper, k.higher_is_better
    ('non-negative', 0.0, inf, False)
    >>> k.rule
    "non-negative, no upper bound, lower is better ('bits per byte' in the name)"
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from dataclasses import dataclass

import numpy as np

from cppjax.errors import CppjaxWarning, DataError

log = logging.getLogger("cppjax.data.matrix")

_FAMILIES = (
    "llama", "gpt", "pythia", "mistral", "mixtral", "qwen", "falcon", "opt", "bloom", "gemma",
    "phi", "claude", "t5", "flan", "mpt", "olmo", "deepseek", "yi", "vicuna", "alpaca", "gpt-j",
    "gpt-neo", "neox", "cerebras", "stablelm", "redpajama", "starcoder", "codegen", "glm",
    "chatglm", "baichuan", "internlm", "palm", "chinchilla", "gopher", "jurassic", "cohere",
    "command", "luminous", "anthropic", "openai", "davinci", "curie", "babbage", "ada",
    "text-davinci", "j1", "tnlg", "ul2", "yalm", "galactica", "dolly", "zephyr", "solar",
    "orca", "wizardlm", "tulu", "xglm", "mt5", "bert", "roberta", "gemini", "grok", "dbrx",
)
#: (pattern, what it shows) of a model's name
MODEL_EVIDENCE = (
    (re.compile(r"^[\w.-]+/[\w.-]+$"), "org/name"),
    (re.compile(r"(?<![a-z0-9.])\d+(\.\d+)?\s?[bmk](?![a-z])", re.I), "a size such as 7B or 70m"),
    (re.compile(r"\bstep[-_ ]?\d+|\bckpt\b|checkpoint|\brevision\b", re.I), "a checkpoint"),
    (re.compile(r"(?<![a-z])v\d+(\.\d+)*(?![a-z])", re.I), "a version"),
    (re.compile(r"[-_ ](instruct|chat|base|hf|it|sft|dpo|rlhf|deduped)(?![a-z])", re.I),
     "a release suffix"),
    (re.compile(r"(?<![a-z])(" + "|".join(map(re.escape, _FAMILIES)) + r")(?![a-z])", re.I),
     "a model family"),
)
_METRICS = (
    r"acc(uracy)?", r"acc_norm", r"exact[ _-]?match", r"em", r"f1", r"rouge(-?[12l])?",
    r"bleu", r"chrf", r"bpb", r"bits[ _-]per[ _-]byte", r"perplexity", r"ppl", r"loss",
    r"ece", r"calibration", r"toxicity", r"toxic", r"bias", r"stereotype", r"wer", r"pass@\d+",
    r"auc", r"mcc", r"score", r"rating", r"win[ _-]?rate", r"error", r"likelihood",
    r"brier", r"latency", r"mean",
)
_BENCHMARKS = (
    "mmlu", "hellaswag", "arc", "arc-c", "arc-e", "gsm8k", "winogrande", "winograd",
    "truthfulqa", "humaneval", "mbpp", "boolq", "piqa", "siqa", "lambada", "triviaqa",
    "naturalquestions", "natural questions", "math", "bbh", "big-bench", "drop", "squad",
    "narrativeqa", "quac", "imdb", "civilcomments", "raft", "xsum", "cnn/dm", "obqa", "race",
    "logiqa", "wsc", "agieval", "wikitext", "pile", "crows", "bbq", "anli", "copa", "rte",
    "wic", "cb", "multirc", "record", "sciq", "openbookqa", "headqa", "mathqa", "blimp",
)
#: (pattern, what it shows) of a task's or metric's name
TASK_EVIDENCE = (
    (re.compile(r"\s[-–:]\s"), "a 'Benchmark - Metric' separator"),
    (re.compile(r"(?<![a-z])(" + "|".join(_METRICS) + r")(?![a-z])", re.I), "a metric word"),
    (re.compile(r"(?<![a-z])(" + "|".join(map(re.escape, _BENCHMARKS)) + r")(?![a-z])", re.I),
     "a benchmark name"),
    (re.compile(r"\d+\s?[- ]?shot|zero[- ]shot|few[- ]shot", re.I), "a few-shot count"),
)
#: the share of labels by which one reading must beat the other
MARGIN = 0.3


def _share(labels, evidence) -> tuple[float, dict[str, int]]:
    """The share of ``labels`` matching any of ``evidence``, and how many match each kind."""
    counts: dict[str, int] = {}
    hits = 0
    for lab in labels:
        found = [what for pat, what in evidence if pat.search(str(lab))]
        hits += bool(found)
        for what in found:
            counts[what] = counts.get(what, 0) + 1
    return hits / max(len(labels), 1), counts


def _why(counts: dict[str, int], n: int) -> str:
    best = sorted(counts.items(), key=lambda kv: -kv[1])[:2]
    return ", ".join(f"{c}/{n} with {what}" for what, c in best) or "no telling names"


@dataclass(frozen=True)
class Orientation:
    """The decision of :func:`orientation`: ``models_as`` (``"rows"`` or ``"columns"``), the
    evidence score (positive: models in rows) and the line that says it."""

    models_as: str
    score: float
    line: str


def orientation(row_labels, col_labels, source: str = "table") -> Orientation:
    """Which axis of a wide table holds the models, from its labels: model names (org/name,
    sizes such as 7B or 70m, checkpoints, versions, release suffixes, family names) against
    task and metric names (metric words such as accuracy, EM, ROUGE, BPB; benchmark names;
    ``Benchmark - Metric`` separators; few-shot counts). The score is (models' share - tasks'
    share) among the row labels plus (tasks' share - models' share) among the column labels;
    beyond +/- :data:`MARGIN` the labels decide. With no evidence either way the usual layout
    (models as rows) is read and said to be a default; weak or contradictory evidence is a
    :class:`~cppjax.DataError` asking for ``models_as``."""
    rows, cols = list(row_labels), list(col_labels)
    rm, rm_why = _share(rows, MODEL_EVIDENCE)
    rt, rt_why = _share(rows, TASK_EVIDENCE)
    cm, cm_why = _share(cols, MODEL_EVIDENCE)
    ct, ct_why = _share(cols, TASK_EVIDENCE)
    score = (rm - rt) + (ct - cm)
    flip = "models_as= (--models-as) fixes it"
    if score >= MARGIN:
        return Orientation("rows", score, (
            f"{source}: read as {len(rows)} models (rows) x {len(cols)} tasks (columns): row "
            f"names look like models ({_why(rm_why, len(rows))}), column names like tasks "
            f"({_why(ct_why, len(cols))}); models_as='columns' (--models-as columns) flips it"))
    if score <= -MARGIN:
        return Orientation("columns", score, (
            f"{source}: read as {len(cols)} models (columns) x {len(rows)} tasks (rows): column "
            f"names look like models ({_why(cm_why, len(cols))}), row names like tasks "
            f"({_why(rt_why, len(rows))}); models_as='rows' (--models-as rows) flips it"))
    if max(rm, rt, cm, ct) < 0.1:
        return Orientation("rows", score, (
            f"{source}: read as {len(rows)} models (rows) x {len(cols)} tasks (columns), the "
            f"usual layout: no label says which axis holds models; {flip}"))
    raise DataError(
        f"{source}: cannot tell which axis holds the models: rows look like models in "
        f"{rm:.0%} and like tasks in {rt:.0%} of {len(rows)} names, columns like models in "
        f"{cm:.0%} and like tasks in {ct:.0%} of {len(cols)}; pass models_as='rows' or "
        f"'columns' (--models-as rows|columns)")


def orient(table) -> str:
    """``models_as`` of a table (:class:`cppjax.data.tables.Table`) read with
    ``models_as="auto"``: logged, and warned about where the models are its columns (a table
    read transposed is silently wrong)."""
    o = orientation(table.row_labels, table.col_labels, table.source)
    if o.models_as == "columns":
        warnings.warn(o.line, CppjaxWarning, stacklevel=4)
    else:
        log.info(o.line)
    return o.models_as


# ---------------------------------------------------------------------------------------------
# metric kinds
# ---------------------------------------------------------------------------------------------
#: names of metrics whose best score is the lowest (with the rule shown to the user)
LOWER_IS_BETTER = re.compile(
    r"(?<![a-z])(bpb|bits[ _-]per[ _-](byte|char|token)|perplexity|ppl|loss|error|err|ter|"
    r"likelihood[ _-]difference|"
    r"ece|calibration[ _-]error|latency|runtime|toxicity|toxic|bias|stereotypes?|"
    r"pct_stereotype|wer|cer|brier|nll|mse|rmse|mae)(?![a-z])", re.I)
_SCALE = re.compile(r"(?<!\d)1\s?(-|–|to)\s?(5|7|10)(?!\d)", re.I)
_RATING = re.compile(r"likert|rating|stars?\b", re.I)
_HUNDRED = re.compile(r"(?<![a-z])(bleu|rouge(-?[12l])?|chrf|sacrebleu|meteor)(?![a-z])", re.I)
_SIGNED = re.compile(r"likelihood[ _-]difference|difference|delta|gap|margin|log[ _-]?prob",
                     re.I)


@dataclass(frozen=True)
class MetricKind:
    """What a metric's name and values say: its ``kind``, bounds and direction, and the rule
    that decided them (printed by the CLI)."""

    kind: str
    lower: float
    upper: float
    higher_is_better: bool
    rule: str


def metric_kind(name: str, values=None) -> MetricKind:
    """The kind of the metric ``name`` (with its observed ``values`` where given): a rating scale
    (``1-5``, ``1-10``, Likert, rating: bounds from the scale, or 1-5 / 1-10 from the values);
    BLEU / ROUGE / chrF on 0-100 (or 0-1 where every value lies there); a signed difference
    (unbounded); lower-is-better by name (bits per byte, perplexity, loss, error, ECE, latency,
    toxicity, bias, stereotype, WER, ...: bounded below by 0 where its values are, and above by
    1 or 100 only for a rate); otherwise a rate in [0, 1], a percent in [0, 100] or unbounded,
    from the values."""
    v = np.asarray([] if values is None else values, dtype=float)
    v = v[np.isfinite(v)]
    lo_v = float(v.min()) if v.size else math.nan
    hi_v = float(v.max()) if v.size else math.nan
    text = str(name)
    lower_better = LOWER_IS_BETTER.search(text)
    direction = (f", lower is better ('{lower_better.group(0)}' in the name)"
                 if lower_better else "")
    if (m := _SCALE.search(text) or _RATING.search(text)) and not lower_better:
        top = (float(m.group(2)) if m.re is _SCALE
               else (10.0 if v.size and hi_v > 5 else 5.0))
        if not v.size or (lo_v >= 1 and hi_v <= top):
            return MetricKind("rating", 1.0, top, True, f"rating 1-{top:g} ('{m.group(0)}' in "
                              f"the name)")
    if (m := _HUNDRED.search(text)) and not lower_better:
        if v.size and lo_v >= 0 and hi_v <= 1:
            return MetricKind("text overlap (0-1)", 0.0, 1.0, True,
                              f"'{m.group(0)}' in the name, every value in [0, 1]")
        if not v.size or (lo_v >= 0 and hi_v <= 100):
            return MetricKind("text overlap (0-100)", 0.0, 100.0, True,
                              f"'{m.group(0)}' in the name")
    if _SIGNED.search(text) and not lower_better:
        return MetricKind("signed", -math.inf, math.inf, True,
                          f"a difference ('{_SIGNED.search(text).group(0)}' in the name)")
    if lower_better:
        if v.size and lo_v >= 0 and hi_v <= 1 and not re.search(
                r"bpb|bits|perplexity|ppl|loss|nll|latency|runtime|mse|mae", text, re.I):
            return MetricKind("rate", 0.0, 1.0, False, f"a rate in [0, 1]{direction}")
        if v.size and lo_v >= 0 and hi_v <= 100 and re.search(r"pct|percent|%", text, re.I):
            return MetricKind("percent", 0.0, 100.0, False, f"a percent{direction}")
        if not v.size or lo_v >= 0:
            return MetricKind("non-negative", 0.0, math.inf, False,
                              f"non-negative, no upper bound{direction}")
        return MetricKind("unbounded", -math.inf, math.inf, False, f"unbounded{direction}")
    if not v.size:
        return MetricKind("unknown", -math.inf, math.inf, True, "no scores: unbounded")
    if lo_v >= 0 and hi_v <= 1:
        return MetricKind("rate", 0.0, 1.0, True, "every value in [0, 1]")
    if lo_v >= 0 and hi_v <= 100:
        return MetricKind("percent", 0.0, 100.0, True, "every value in [0, 100]")
    return MetricKind("unbounded", -math.inf, math.inf, True, "values beyond [0, 100]")


def named_direction(name: str) -> tuple[bool, str | None]:
    """Whether the task named ``name`` is higher-is-better by its name, and the word that says
    it is not (``None`` where nothing does)."""
    m = LOWER_IS_BETTER.search(str(name))
    return (m is None), (m.group(0) if m else None)


__all__ = ["MetricKind", "Orientation", "metric_kind", "named_direction", "orient",
           "orientation"]


_PARAMS = re.compile(r"(?<![a-z0-9])(?:(\d+)x)?(\d+(?:[._]\d+)?)([bm])(\d)?(?![a-z0-9])", re.I)


def parameters_from_name(name: str) -> tuple[float, str] | None:
    """A model's parameter count read from its name, with the text it came from, or ``None``
    where the name does not say it (never guessed). ``1_8b`` is 1.8B; an expert count
    multiplies (``8x7B``: 56B, the experts' sum, not the shared-weight total); ``bloom-1b7``
    is 1.7B; where a name holds several sizes the largest is taken (``OLMoE-1B-7B``: 7B in
    all, 1B active; ``granite-3b-a800m``); a context length such as ``1M`` is smaller than
    any model size taken with it and so never chosen over it.

    Example:
        >>> parameters_from_name("Qwen/Qwen2.5-7B-Instruct-1M")
        (7000000000.0, '7B')
        >>> parameters_from_name("internlm/internlm2-1_8b"), parameters_from_name("gpt2")
        ((1800000000.0, '1_8b'), None)
    """
    best = None
    for m in _PARAMS.finditer(name):
        num = m.group(2).replace("_", ".") + (f".{m.group(4)}" if m.group(4) and "."
                                               not in m.group(2).replace("_", ".") else "")
        n = float(num) * (1e9 if m.group(3).lower() == "b" else 1e6)
        n *= float(m.group(1) or 1)
        if best is None or n > best[0]:
            best = (n, m.group(0))
    return best
