"""Saved posteriors: one format for every posterior, the name given kept, and every damaged,
foreign, incomplete or altered file refused with a message that says which (never a nudge to
unpickle)."""

import json
import zipfile

import numpy as np
import pytest

import cppjax
from cppjax import DataError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rng = np.random.default_rng(0)
    s = rng.random((6, 4))
    s[0, 1] = s[2, 3] = np.nan
    sm = cppjax.ScoreMatrix(s, [f"m{i}" for i in range(6)], [f"t{j}" for j in range(4)],
                            scale="fraction")
    post = cppjax.fit("mf", sm, rng_key=0, inference=cppjax.Adam(steps=5, n_inits=2))
    path = post.save(tmp_path_factory.mktemp("io") / "notes.txt")
    return post, path


def _rewrite(src, dst, drop=(), change=None):
    """Copy a saved archive leaving out ``drop`` and replacing arrays in ``change``."""
    with np.load(src, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files if k not in drop}
    arrays.update(change or {})
    with open(dst, "wb") as fh:
        np.savez(fh, **arrays)
    return dst


def test_save_keeps_the_name_and_loads_identically(saved):
    post, path = saved
    assert path.name == "notes.txt" and not path.with_suffix(".txt.npz").exists()
    back = cppjax.load(path)
    np.testing.assert_array_equal(back.predict("missing").draws, post.predict("missing").draws)
    assert back.inference == post.inference and back.spec == post.spec


def test_truncated_file_is_refused(saved, tmp_path):
    _, path = saved
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DataError, match="not a zip archive|damaged or truncated") as e:
        cppjax.load(cut)
    assert "pickle" not in str(e.value)


def test_random_bytes_are_refused_without_mentioning_pickle(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(DataError, match="not a saved cppjax posterior") as e:
        cppjax.load(junk)
    assert "pickle" not in str(e.value)


def test_foreign_npz_is_refused(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3))
    with pytest.raises(DataError, match="without cppjax's 'meta'"):
        cppjax.load(foreign)
    other = tmp_path / "other.npz"
    np.savez(other, meta=np.array(json.dumps({"format": "something-else"})))
    with pytest.raises(DataError, match="format 'something-else'"):
        cppjax.load(other)


def test_missing_or_altered_array_is_refused(saved, tmp_path):
    _, path = saved
    with pytest.raises(DataError, match="incomplete: array\\(s\\) pred are missing"):
        cppjax.load(_rewrite(path, tmp_path / "a.npz", drop=("pred",)))
    with np.load(path) as f:
        pred = f["pred"].copy()
    pred[0, 0, 0] += 0.25
    with pytest.raises(DataError, match="array 'pred' differs from the one saved"):
        cppjax.load(_rewrite(path, tmp_path / "b.npz", change={"pred": pred}))
    with pytest.raises(DataError, match="not in the file's manifest"):
        cppjax.load(_rewrite(path, tmp_path / "c.npz", change={"extra": np.zeros(2)}))


def test_file_from_a_newer_cppjax_is_refused(saved, tmp_path):
    _, path = saved
    with zipfile.ZipFile(path) as z:
        assert "meta.npy" in z.namelist()
    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
    meta["version"] = 99
    newer = _rewrite(path, tmp_path / "newer.npz", change={"meta": np.array(json.dumps(meta))})
    with pytest.raises(DataError, match="newer cppjax"):
        cppjax.load(newer)


def test_a_fit_needs_a_score_matrix():
    with pytest.raises(TypeError, match="train must be a cppjax.ScoreMatrix"):
        cppjax.fit("mf", np.ones((3, 3)), rng_key=0)


def test_settings_that_do_not_apply_are_errors():
    from cppjax.models.registry import make_spec

    with pytest.raises(TypeError, match="'num_samples' do\\(es\\) not apply to 'mf'"):
        make_spec("mf", num_samples=10)
    with pytest.raises(ValueError, match="NUTS.num_chains must be a positive integer"):
        cppjax.NUTS(num_chains=0)
    with pytest.raises(TypeError, match="PMF is fitted by NUTS, SVI, MAP, not Adam"):
        cppjax.PMF().resolve_inference(cppjax.Adam())
    spec, inf = make_spec("pmf_svi", rank=2, num_steps=10)
    assert spec.rank == 2 and inf.num_steps == 10 and isinstance(inf, cppjax.SVI)
    # the first forms still work: settings on the spec become its inferences' defaults
    with pytest.warns(DeprecationWarning, match="inference object"):
        legacy = cppjax.PMF(rank=2, svi_steps=300, num_samples=50)
    assert legacy.default_inference("svi") == cppjax.SVI(num_steps=300, num_samples=50)
    with pytest.warns(DeprecationWarning, match="default_inference"):
        assert legacy.num_samples == 50 and cppjax.MF().n_inits == 5


def test_keys_are_explicit():
    from cppjax.inference.keys import as_key

    with pytest.raises(ValueError, match="rng_key is required"):
        as_key(None)
    with pytest.raises(TypeError, match="not a bool"):
        as_key(True)
