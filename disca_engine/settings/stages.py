"""The settings of each stage of the method, and the run options apart from it."""
from dataclasses import dataclass

from .constraints import Boolean, Interval, OneOf, Widths, setting as _s


@dataclass(frozen=True)
class Network:
    """The DISCA network (valid 3x3x3 convolutions, max-pooling taps) and its training."""
    widths: tuple = _s(check=Widths())
    feature_dim: int = _s(check=Interval(int, 1))
    learning_rate: float = _s(check=Interval(float, 0, open_low=True), flag="--learning-rate",
                              why="e.g. 1e-3")
    epochs_per_iteration: int = _s(check=Interval(int, 1), flag="--epochs-per-iteration")
    batch_size: int = _s(check=Interval(int, 1), flag="--batch-size")
    head_epochs: int = _s(check=Interval(int, 0))
    head_learning_rate: float = _s(check=Interval(float, 0, open_low=True))
    dropout: float = _s(0.5, Interval(float, 0, 1, open_high=True))
    lr_decay: float = _s(0.95, Interval(float, 0, 1, open_low=True))


@dataclass(frozen=True)
class Loop:
    """The iterations: label smoothing a x decay^it, and the stop rule (K and labels stable)."""
    max_iterations: int = _s(check=Interval(int, 1), flag="--max-iterations")
    label_smoothing: float = _s(0.2, Interval(float, 0, 1, open_high=True))
    smoothing_decay: float = _s(0.9, Interval(float, 0, 1, open_low=True))
    patience: int = _s(3, Interval(int, 1))
    min_stable: float = _s(0.99, Interval(float, 0, 1, open_low=True))


@dataclass(frozen=True)
class FeaturePCA:
    """PCA of the network features, refitted every iteration, and the mixture there."""
    per_subtomograms: int = _s(check=Interval(int, 1, none=True),
                               why="at most N / this many components; null: no cap")
    per_cluster: bool = _s(check=Boolean())
    components: int = _s(16, Interval(int, 1), flag="--pca-components")
    reg_covar: float = _s(1e-5, Interval(float, 0, open_low=True))


@dataclass(frozen=True)
class KByBic:
    """paper, fast: every candidate K fitted each iteration, the lowest BIC kept."""
    n_init: int = _s(1, Interval(int, 1))
    max_fit_samples: int = _s(20000, Interval(int, 0), why="0: select K on all subtomograms")


@dataclass(frozen=True)
class ParticleMask:
    """A soft sphere about the box centre that keeps neighbours and membranes out of every
    score, average and descriptor of the classification."""
    diameter_A: float = _s(None, Interval(float, 0, open_low=True, none=True),
                           flag="--particle-diameter-A",
                           why="the particle's diameter in A; null: estimated from the data")


@dataclass(frozen=True)
class Descriptors:
    """Rotation-invariant descriptors (radial power spectrum, angular power, radial profile)."""
    angular: bool = _s(True, Boolean())
    components: int = _s(16, Interval(int, 2))
    weight: float = _s(1.0, Interval(float, 0), why="weight beside the network features where "
                                                     "DDBI compares iterations")


@dataclass(frozen=True)
class Seeds:
    """Over-split k-means of the descriptors: about one cluster per ``per_cluster`` boxes."""
    per_cluster: int = _s(12, Interval(int, 1))
    k_min: int = _s(6, Interval(int, 2))
    k_max: int = _s(24, Interval(int, 2))


@dataclass(frozen=True)
class Alignment:
    """Multi-reference alignment rounds (hard EM) over a near-uniform rotation grid."""
    rotations: int = _s(1500, Interval(int, 24))
    coarse: int = _s(12, Interval(int, 8), why="box of the coarse copies of the rotation scan")
    init_rounds: int = _s(2, Interval(int, 0))
    rounds: int = _s(12, Interval(int, 1))
    coarse_shift: int = _s(1, Interval(int, 0, 3), why="coarse voxels; the cost grows as (2t+1)^3")
    max_n: int = _s(2000, Interval(int, 0), flag="--subsample",
                    why="larger N: classes found, and learnt by the network, on a random "
                        "subsample of this size; 0: never")
    disattenuate: bool = _s(True, Boolean())


@dataclass(frozen=True)
class MergeTest:
    """Two classes merge when their aligned averages agree as well as two averages of one
    structure would (per-shell agreement over the half-set reliabilities) unless their
    members, held out, clearly prefer their own class, or when those members do not prefer
    their own class (``align.evidence``)."""
    threshold: float = _s(0.8, Interval(float, 0, 2, open_low=True),
                          why="1 = as similar as two averages of one structure")
    pose_shift: int = _s(2, Interval(int, 0, 3), why="coarse voxels; the cost grows as (2t+1)^3")
    pose_top: int = _s(4, Interval(int, 1))
    evidence: float = _s(4.0, Interval(float, 0), why="held-out z under which two classes merge "
                                                       "whatever their agreement; 0: off")
    veto_ratio: float = _s(0.85, Interval(float, 0, 1),
                           why="held-out other/own score under which (with z >= veto_z) two "
                               "classes stay apart however well their averages agree; 0: off")
    veto_z: float = _s(6.0, Interval(float, 0), why="held-out z the veto needs")


@dataclass(frozen=True)
class JunkSplit:
    """A class's low-scoring group that matches its average little better than noise, or
    whose boxes hold other content, becomes a class of its own."""
    position: float = _s(0.2, Interval(float, 0, 1, open_high=True),
                         why="how near noise a low-scoring group must be to split off; 0: "
                             "only the spectral test")
    spectrum: float = _s(0.8, Interval(float, 0, 1, open_high=True),
                         why="null ratio under which a low group holds other content; 0: off")


@dataclass(frozen=True)
class Rest:
    """Above ``alignment.max_n``: how the subtomograms outside the subsample are classified
    once the network has learnt the subsample's classes (``stages/rest.py``)."""
    by: str = _s("network", OneOf("network", "alignment"), flag="--rest-by",
                 why="network: as the saved model classifies new data, aligned where it is "
                     "unsure; alignment: every one aligned to the references")
    unsure: float = _s(0.999, Interval(float, 0, 1),
                       why="network posterior under which a subtomogram is aligned instead; "
                           "0: the network alone")


@dataclass(frozen=True)
class Classification:
    """auto: the classes found before the network learns them, stage after stage."""
    mask: ParticleMask = ParticleMask()
    descriptors: Descriptors = Descriptors()
    seeds: Seeds = Seeds()
    alignment: Alignment = Alignment()
    merge_test: MergeTest = MergeTest()
    relabel: bool = _s(True, Boolean(), why="two-view relabelling")
    junk_split: JunkSplit = _s(JunkSplit(), why="null: no junk split")
    rest: Rest = Rest()


@dataclass(frozen=True)
class Method:
    """Everything that decides the result of a run, by stage; None: the stage does not run."""
    preset: str
    k_range: tuple
    network: Network
    loop: Loop
    feature_pca: FeaturePCA
    k_by_bic: KByBic = None
    classification: Classification = None
    min_cluster_size: int = _s(5, Interval(int, 2))


@dataclass(frozen=True)
class RunOptions:
    """How and where a run computes, and its seed; only seed, restarts, precision and
    init_model change the result (the resume fingerprint holds those)."""
    seed: int = _s(0, Interval(int, 0), flag="--seed")
    restarts: int = _s(1, Interval(int, 1), flag="--restarts")
    precision: str = "auto"
    threads: int = _s(None, Interval(int, 1, none=True), flag="--threads")
    gpus: str = None
    init_model: str = None
    resume: bool = False
    overwrite: bool = False
    cache_dir: str = None


RESULT_OPTIONS = ("seed", "restarts", "precision", "init_model")
