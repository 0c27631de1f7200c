"""Read a ``cluster`` output folder (see docs/engine-contract.md) into one object the
report's parts share: labels, posteriors, sizes, iterations, voxel and box size."""
import glob
import json
import os

import mrcfile
import numpy as np

from .. import contract
from ..errors import EngineError
from ..io import mrc, star


def one_based(labels):
    """Labels as 1..K: ``labels.npy`` files may hold 0-based labels, STAR files 1-based."""
    labels = np.asarray(labels).astype(int)
    return labels + 1 if labels.size and labels.min() == 0 else labels


class ClusterRun:
    """Everything the report needs from one ``cluster`` folder."""

    def __init__(self, cluster_dir):
        self.dir = os.path.abspath(cluster_dir)
        self.star_path = os.path.join(self.dir, contract.CLUSTERS_STAR)
        # a cluster folder has report.json; a predict (classify) folder has summary.json
        report_path = os.path.join(self.dir, contract.REPORT_JSON)
        summary_path = os.path.join(self.dir, "summary.json")
        self.is_predict = not os.path.isfile(report_path) and os.path.isfile(summary_path)
        info_path = summary_path if self.is_predict else report_path
        if not os.path.isfile(info_path) or not os.path.isfile(self.star_path):
            raise EngineError(f"{cluster_dir} is not a finished 'disca-engine cluster' or 'predict' "
                              "folder (report.json/summary.json or clusters.star missing): run it "
                              "first or fix the path")
        with open(info_path) as fh:
            try:
                self.info = json.load(fh)
            except json.JSONDecodeError as exc:
                raise EngineError(f"{info_path} is not valid JSON ({exc}): rerun the command")
        self.table = star.read_particles(self.star_path)
        self.labels = self.table.column(contract.CLASS, int, self.star_path)
        self.posteriors = (self.table.column(contract.POSTERIOR, float)
                           if contract.POSTERIOR in self.table else np.ones(len(self.labels)))
        self.classes = sorted(int(c) for c in np.unique(self.labels))
        self.k = max(self.classes) if self.classes else 0
        self.sizes = {c: int(np.sum(self.labels == c)) for c in self.classes}
        self.star_dir = os.path.dirname(self.star_path)
        self.image_dir = self._image_dir()
        self.iterations = self._iterations()
        self.chosen_iteration = int(self.info.get("chosen_iteration") or
                                    (self.iterations[-1][0] if self.iterations else 0))
        self.box_size, self.voxel_size = self._box_and_voxel()

    def _iterations(self):
        """[(iteration number, folder)] sorted, for folders holding features and labels."""
        found = []
        for d in glob.glob(os.path.join(self.dir, "iterations", "iter_*")):
            name = os.path.basename(d)
            if (name[5:].isdigit() and os.path.isfile(os.path.join(d, "labels.npy"))
                    and os.path.isfile(os.path.join(d, "features_pca.npy"))):
                found.append((int(name[5:]), d))
        return sorted(found)

    def _image_dir(self):
        """Folder that relative _rlnImageName entries are relative to: clusters.star's own
        (cluster and predict write absolute names, which any folder resolves)."""
        if len(self.table):
            first = self.table[contract.IMAGE][0]
            if not os.path.isfile(mrc.parse_image_name(first, self.star_dir)[0]):
                raise EngineError(f"subtomogram {first} (first row of {self.star_path}) not found "
                                  f"relative to {self.star_dir}: were the subtomograms moved? Fix "
                                  "the paths in clusters.star")
        return self.star_dir

    def _box_and_voxel(self):
        box = self.info.get("box_size")
        vs = self.info.get("voxel_size")
        first_avg = self.average_path(self.classes[0]) if self.classes else None
        if first_avg and os.path.isfile(first_avg):
            vs = vs or mrc.voxel_size(first_avg)
            box = box or mrc.volume_shape(first_avg)[0]
        if (vs is None or box is None) and len(self.table):
            path, index = mrc.parse_image_name(self.table[contract.IMAGE][0], self.image_dir)
            if os.path.isfile(path):
                vs = vs or mrc.voxel_size(path)
                box = box or mrc.read_volume(path, index).shape[0]
        return (int(box) if box else None), vs

    def average_path(self, c):
        return contract.average_path(self.dir, c)

    def average(self, c, max_members=200):
        """(volume, caption) of cluster ``c``: the average written by ``cluster``, else the
        mean of its ``max_members`` highest-posterior members (predict folders have none)."""
        path = self.average_path(c)
        if os.path.isfile(path):
            return mrc.read_volume(path), "average"
        rows = self.members(c)[:max_members]
        if not len(rows):
            return None, "average"
        label = "average" if len(rows) == self.sizes[c] else f"average of best {len(rows)}"
        return self.read_members(rows).mean(axis=0), label

    def members(self, c):
        """Row indices of cluster ``c``, highest posterior first."""
        idx = np.flatnonzero(self.labels == c)
        return idx[np.argsort(-self.posteriors[idx], kind="stable")]

    def feature_space(self):
        """(N x d features, name) the mixture clustered: features_pca.npy of the chosen
        iteration, else features.npy; (None, None) when the folder keeps neither (predict)."""
        if not hasattr(self, "_features"):
            self._features = (None, None)
            for name in ("features_pca.npy", "features.npy"):
                path = os.path.join(self.dir, name)
                if os.path.isfile(path):
                    feats = np.load(path, mmap_mode="r")
                    if feats.ndim == 2 and len(feats) == len(self.labels):
                        self._features = (np.asarray(feats, dtype=np.float64), name)
                        break
        return self._features

    def ranked_members(self, c):
        """(rows of cluster ``c`` nearest its centre first, their distances, what was used).

        The distance is Euclidean in the feature space the mixture clustered (the centre is
        the members' mean feature); without features, rows come by posterior and distances
        are None. Posteriors are ~1.00 for almost every member, so they rank nothing."""
        idx = np.flatnonzero(self.labels == c)
        feats, name = self.feature_space()
        if feats is None or not len(idx):
            return self.members(c), None, "posterior"
        x = feats[idx]
        dist = np.linalg.norm(x - x.mean(axis=0), axis=1)
        order = np.argsort(dist, kind="stable")
        return idx[order], dist[order], name

    def read_members(self, rows):
        """Stack [len(rows), z, y, x] float32; stacks (N@file.mrcs) are memory-mapped once,
        not re-read per subtomogram."""
        out = None
        by_stack = {}
        for j, row in enumerate(rows):
            path, index = mrc.parse_image_name(self.table[contract.IMAGE][row], self.image_dir)
            if index is None:
                vol = mrc.read_volume(path)
                out = np.empty((len(rows),) + vol.shape, np.float32) if out is None else out
                out[j] = vol
            else:
                by_stack.setdefault(path, []).append((j, index))
        for path, items in by_stack.items():
            m = mrcfile.mmap(path, mode="r", permissive=True)
            try:
                data = m.data if m.data.ndim == 4 else m.data[np.newaxis]
                out = np.empty((len(rows),) + data.shape[1:], np.float32) if out is None else out
                for j, index in items:
                    if index >= data.shape[0]:
                        raise EngineError(f"{index + 1}@{path}: stack has only {data.shape[0]} volumes")
                    out[j] = data[index]
            finally:
                m.close()
        return out if out is not None else np.empty((0,), np.float32)

    def true_classes(self):
        """(true class per row, {class: name}) or (None, None) without ground truth."""
        if contract.TRUE_CLASS not in self.table:
            return None, None
        truth = self.table.column(contract.TRUE_CLASS, int)
        names = {}
        if contract.TRUE_CLASS_NAME in self.table:
            for t, n in zip(truth, self.table[contract.TRUE_CLASS_NAME]):
                names.setdefault(int(t), n)
        return truth, names
