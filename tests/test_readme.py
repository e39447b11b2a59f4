"""Every Python block of the README runs, in order, in one namespace, with small settings: a
README that no longer runs fails here. Each substitution must find its text, so that a README
edit that changes what is substituted fails loudly rather than running the full-size fit."""

import re
from pathlib import Path

import matplotlib
import pytest

from cppjax.datasets import load_cpp_crowdsource

matplotlib.use("Agg")

README = Path(__file__).resolve().parents[1] / "README.md"

#: (text in the README, what the test runs instead): smaller settings, a placeholder filled
SMALL = [
    ("inference=cppjax.SVI(num_steps=5000)", "inference=cppjax.SVI(num_steps=300)"),
    ("score=[...]", "score=[60.0] * len(plan.template())"),
    ('cppjax.fit("auto", split.train, rng_key=0)',
     'cppjax.fit("auto", split.train, rng_key=0, progress=False, '
     'candidates=("copy_sibling", "pc_sigmoid", "scaling_law_hierarchical_map"))'),
    ('targets=["pythia-12b-deduped-v0@step143000"], rng_key=0)',
     'targets=["pythia-12b-deduped-v0@step143000"], rng_key=0, '
     'settings=cod.COD(num_steps=200, num_samples=30))'),
]


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _files(folder: Path) -> None:
    """The files the 'your own data' block reads, made from the bundled CPP table."""
    sm = load_cpp_crowdsource()
    wide = sm.to_long().pivot(index="model", columns="task", values="score")
    wide.to_csv(folder / "leaderboard.csv")
    sm.to_long().to_csv(folder / "scores.csv", index=False)
    sm.model_factors.to_csv(folder / "models.csv")


def test_every_python_block_of_the_readme_runs(tmp_path, monkeypatch):
    code = _blocks()
    assert len(code) >= 5, "the README lost its Python blocks"
    text = "\n".join(code)
    for old, new in SMALL:
        assert old in text, f"README changed: {old!r} is gone (update tests/test_readme.py)"
        code = [c.replace(old, new) for c in code]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CPPJAX_PROGRESS", "0")
    _files(tmp_path)
    namespace: dict = {}
    for n, block in enumerate(code):
        try:
            exec(compile(block, f"README.md python block {n + 1}", "exec"), namespace)
        except Exception as e:  # name the block that failed
            pytest.fail(f"README python block {n + 1} failed: {type(e).__name__}: {e}\n{block}")
    assert (tmp_path / "pmf.npz").exists()
