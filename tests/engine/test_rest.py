"""The rest stage (``clustering.stages.rest``): above ``alignment.max_n`` the classes are found
on a subsample, and the other subtomograms are classified by the network, by alignment to
the classes' references where the network is unsure, or all by alignment."""
import functools

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from disca_engine import settings as S
from disca_engine.clustering.dataset import ParticleSet, Subset
from disca_engine.clustering.network.labelling import mixture_from_labels
from disca_engine.clustering.pca import fit_pca
from disca_engine.clustering.pipeline import classes_from_seeds, rest_references
from disca_engine.clustering.stages import rest
from disca_engine.errors import EngineError


def _simulated(names, n, snr, tilt, seed=0):
    from disca_engine.simulate import generate_subtomograms
    g = generate_subtomograms(names, n, snr=snr, tilt=tilt, seed=seed)
    data = g["data"].astype(np.float32)
    data = (data - data.mean(axis=(1, 2, 3), keepdims=True)) / data.std(axis=(1, 2, 3), keepdims=True)
    return ParticleSet(None, None, data), np.asarray(g["labels"])


@pytest.fixture(scope="module")
def found():
    """Two structures x 20; the classes found on a random subsample of 24 (seeds right:
    the checks are of what happens to the other 16)."""
    parts, truth = _simulated(["ribosome", "rod"], 20, 1.0, 60)
    method = S.resolve("auto", alignment={"rotations": 300, "max_n": 24}).method
    lines = []
    sub = rest_subsample(parts.n, method, lines)
    view = Subset(parts, sub)
    z = np.zeros((parts.n, 2), np.float32)
    classes = classes_from_seeds(view, truth[sub], z[sub], method, 0, 1, log=lines.append)
    return parts, truth, method, sub, view, z, classes, lines


def rest_subsample(n, method, lines):
    from disca_engine.clustering.stages.alignment import subsample
    return subsample(n, method.classification.alignment, 0, lines.append)


def test_a_subset_reads_its_parents_rows_and_shares_the_rest():
    parts, _ = _simulated(["rod"], 6, 1.0, 60)
    view = Subset(parts, [4, 1, 5])
    assert view.n == len(view) == 3 and view.box == parts.box
    got = np.concatenate(list(view.iter_batches(None, 2)))
    np.testing.assert_array_equal(got, parts.volumes[[4, 1, 5]])
    got = np.concatenate(list(view.iter_batches([2, 0], 2)))
    np.testing.assert_array_equal(got, parts.volumes[[5, 4]])


def test_the_rest_is_aligned_to_the_classes_found_on_the_subsample(found):
    parts, truth, method, sub, view, z, classes, lines = found
    assert "random subsample of 24 of the 40" in lines[0]
    assert len(classes.labels) == 24 and classes.refs is not None
    others = rest.others(parts.n, sub)
    assert len(others) == 16 and not set(others) & set(sub)
    built = []
    refs = functools.cache(lambda: built.append(1) or rest_references(
        classes, view, classes.labels, z[sub], method.classification, 1))
    labels = rest.aligned_labels(parts, others, refs, chunk=5)   # 4 chunks, one short
    rest.aligned_labels(parts, others[:3], refs)
    assert built == [1]                    # the references are made once, when first needed
    assert adjusted_rand_score(truth[others], labels) > 0.9


class _Net:
    """A stand-in for the trained network: its 'features' are each box's mean over the
    outer eight of ten spherical shells (a rotation-invariant profile that tells a ribosome from a rod), so
    that the stage's bookkeeping is tested without TensorFlow."""
    class settings:
        feature_dim = 8

    class model:
        @staticmethod
        def set_weights(weights):
            assert weights == "trained"

    @staticmethod
    def features(batch):
        b = np.asarray(batch)
        c = (b.shape[1] - 1) / 2
        g = np.indices(b.shape[1:]) - c
        shell = np.minimum((np.sqrt((g ** 2).sum(0)) / (c + 1) * 10).astype(int), 9)
        return np.stack([b[:, shell == i].mean(1) for i in range(2, 10)], 1)  # the core is noise


def _best(parts, sub, labels):
    features = np.concatenate([_Net.features(b) for b in Subset(parts, sub).iter_batches(None, 8)])
    pca = fit_pca(features, 2)
    Z = pca.transform(features).astype(np.float32)
    mixture = mixture_from_labels(Z, labels, int(labels.max()) + 1, 1e-4)
    proba = mixture.predict_proba(Z)
    return {"labels": labels, "posterior": proba[np.arange(len(labels)), labels].astype(np.float32),
            "features": features, "features_pca": Z, "pca": pca, "mixture": mixture,
            "weights": "trained", "k": int(labels.max()) + 1}


@pytest.mark.parametrize("by,unsure", [("network", 0.0), ("network", 1.0), ("alignment", 0.9)])
def test_the_network_classifies_the_rest_and_alignment_takes_what_it_is_unsure_of(found, by, unsure):
    parts, truth, method, sub, view, z, classes, _ = found
    best = _best(parts, sub, classes.labels)
    built = []
    refs = functools.cache(lambda: built.append(1) or rest_references(
        classes, view, classes.labels, z[sub], method.classification, 1))
    settings = S.Rest(by=by, unsure=unsure)
    lines = []
    full, record = rest.classify(_Net, parts, sub, best, refs, settings, 8, lines.append, truth)
    others = rest.others(parts.n, sub)
    assert record["subsample"] == 24 and record["rest"] == 16 and record["by"] == by
    assert record["by_network"] + record["by_alignment"] == 16
    if by == "network" and unsure == 0.0:          # the network alone: no reference is made
        assert record["by_alignment"] == 0 and built == [] and record["agreement"] is None
    if by == "alignment" or unsure == 1.0:
        assert record["by_alignment"] >= (16 if by == "alignment" else 1) and built == [1]
        assert 0 <= record["agreement"] <= 1
    if by == "alignment":
        sweep = record["ground_truth"]["thresholds"]
        assert [t["unsure"] for t in sweep] == sorted(t["unsure"] for t in sweep)
        assert record["ground_truth"]["final"]["homogeneity"] > 0.9
    # every per-subtomogram array now covers all 40, the subsample's rows unchanged
    for key in ("labels", "posterior", "features", "features_pca"):
        assert len(full[key]) == 40
        np.testing.assert_array_equal(full[key][sub], best[key])
    assert adjusted_rand_score(truth[others], full["labels"][others]) > 0.8
    assert np.all((full["posterior"] > 0) & (full["posterior"] <= 1))
    assert "the rest: 16 subtomograms outside the subsample of 24" in lines[0]


@pytest.mark.parametrize("values,match", [
    ({"by": "mixture"}, "setting classification.rest.by|--rest-by mixture"),
    ({"by": 1}, "--rest-by 1: must be one of 'network', 'alignment'"),
    ({"unsure": 1.5}, "setting classification.rest.unsure 1.5"),
    ({"unsure": -0.1}, "setting classification.rest.unsure -0.1")])
def test_bad_rest_settings_are_refused_in_one_line(values, match):
    with pytest.raises(EngineError, match=match):
        S.resolve("auto", rest=values)


def test_the_subsample_flag_sets_the_alignment_limit_and_is_checked():
    assert S.resolve("auto", subsample=500).method.classification.alignment.max_n == 500
    assert S.resolve("auto", rest_by="alignment").method.classification.rest.by == "alignment"
    with pytest.raises(EngineError, match="--subsample -1: must be"):
        S.resolve("auto", subsample=-1)
    with pytest.raises(EngineError, match="the fast preset has no classification"):
        S.resolve("fast", subsample=500)
