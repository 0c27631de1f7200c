"""Rotation-invariant descriptors of subtomograms: what the first clustering sees.

DISCA's first labels decide its result (method section 11): structures merged at iteration 1
stay merged, because training on a shared label erases what separated them. A randomly
initialised network sees little structure, so the default method starts from descriptors
that already do, and keeps them beside the network's features in every iteration:

* log radial power spectrum (translation and rotation invariant: size, mass distribution),
* angular power of the power spectrum: on each Fourier shell, the energy of the even
  spherical-harmonic degrees l = 2, 4, 6 relative to l = 0 (rotation invariant shape
  anisotropy: rods, discs, rings, cages differ here; translation invariant too),
* radial density profile around the box centre (picks are centred within a few voxels).

The missing wedge removes the same Fourier directions from every subtomogram; those
directions are found from the data (where the mean power is near zero) and left out of the
spherical-harmonic fits, so the angular power is estimated from measured directions only.
Numpy/scipy only.
"""
import numpy as np
from scipy import special

DEGREES = (2, 4, 6)


def _sph_harm(l, m, polar, azimuth):
    """Complex Y_l^m; scipy >= 1.15 names it sph_harm_y (argument order differs)."""
    if hasattr(special, "sph_harm_y"):
        return special.sph_harm_y(l, m, polar, azimuth)
    return special.sph_harm(m, l, azimuth, polar)


def sphere_points(n):
    """``n`` nearly uniform unit vectors (Fibonacci lattice), [z, y, x] order."""
    i = np.arange(n) + 0.5
    polar = np.arccos(1 - 2 * i / n)
    azimuth = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(polar), np.sin(polar) * np.sin(azimuth),
                     np.sin(polar) * np.cos(azimuth)], axis=1), polar, azimuth


class InvariantDescriptor:
    """Computes the descriptor of a batch of s^3 subtomograms (fit the wedge mask first)."""

    def __init__(self, box, n_directions=256, k_min=1, k_max=None, angular=True):
        self.box = int(box)
        self.angular = bool(angular)  # without it: radial power spectrum and profile only
        self.k_max = int(k_max or max(3, round(self.box / 3)))
        self.shells = np.arange(int(k_min), self.k_max + 1)
        self.dirs, polar, azimuth = sphere_points(n_directions)
        # real basis of the even degrees: [Re, Im] parts of Y_l^m, m >= 0
        cols = []
        self.degree_of_col = []
        for l in (0,) + DEGREES:
            for m in range(0, l + 1):
                y = _sph_harm(l, m, polar, azimuth)
                cols.append(y.real)
                self.degree_of_col.append(l)
                if m:
                    cols.append(y.imag)
                    self.degree_of_col.append(l)
        self.basis = np.stack(cols, axis=1)          # (n_directions, n_coef)
        self.degree_of_col = np.array(self.degree_of_col)
        c = self.box // 2
        ax = np.arange(self.box) - c
        r = np.sqrt(sum(a ** 2 for a in np.meshgrid(ax, ax, ax, indexing="ij")))
        self.radius_bin = np.minimum(np.rint(r).astype(int), c).ravel()
        self.radius_count = np.bincount(self.radius_bin, minlength=c + 1)
        self.kr_bin = self.radius_bin.reshape(r.shape)  # |k| in shifted Fourier grid: same grid
        self.measured = None

    # ---------------------------------------------------------------- geometry
    def _shell_points(self):
        c = self.box // 2
        return [c + k * self.dirs for k in self.shells]  # each (n_dir, 3) shifted-grid indices

    def _shell_values(self, power):
        """Power (shifted) sampled on every shell: (n_shells, n_dir), trilinear."""
        from scipy.ndimage import map_coordinates
        return np.stack([map_coordinates(power, pts.T, order=1, mode="nearest")
                         for pts in self._shell_points()])

    @staticmethod
    def _power(vol):
        f = np.fft.fftshift(np.fft.fftn(vol.astype(np.float64)))
        return np.abs(f) ** 2

    def fit_wedge(self, batches):
        """Directions with measured data, per shell, from the mean power of the data."""
        total, n = None, 0
        for batch in batches:
            for v in batch:
                p = self._shell_values(self._power(v))
                total = p if total is None else total + p
                n += 1
        mean = total / max(n, 1)
        # unmeasured directions hold (almost) no power; measured ones are within ~10x of
        # the shell median (structure factors vary less than that on average). When more
        # than half of a shell is missing (tilt ranges narrower than about +-40) the median
        # lies in the wedge: the 90th percentile is the reference there instead
        p90 = np.percentile(mean, 90, axis=1, keepdims=True)
        typical = np.where((mean > 0.1 * p90).mean(1, keepdims=True) < 0.5, p90,
                           np.median(mean, axis=1, keepdims=True))
        self.measured = mean > 0.1 * typical
        return self

    # ---------------------------------------------------------------- descriptors
    def _angular_power(self, shells):
        out = []
        for values, ok in zip(shells, self.measured):
            a = self.basis[ok]
            coef, *_ = np.linalg.lstsq(a, values[ok], rcond=None)
            c0 = coef[self.degree_of_col == 0][0] ** 2 + 1e-12
            out.extend(np.sum(coef[self.degree_of_col == l] ** 2) / c0 for l in DEGREES)
        return np.log(np.asarray(out) + 1e-6)

    def describe(self, vol):
        power = self._power(vol)
        flat = power.ravel()
        c = self.box // 2
        rps = np.bincount(self.radius_bin, flat, minlength=c + 1) / np.maximum(self.radius_count, 1)
        rps = np.log(rps[self.shells] + 1e-12)
        prof = np.bincount(self.radius_bin, vol.ravel(), minlength=c + 1)[: c] / self.radius_count[: c]
        if not self.angular:
            return np.concatenate([rps, prof])
        ang = self._angular_power(self._shell_values(power))
        return np.concatenate([rps, ang, prof])

    def transform(self, batches):
        if self.angular and self.measured is None:
            raise RuntimeError("fit_wedge must run before transform")
        return np.array([self.describe(v) for batch in batches for v in batch], np.float32)


def invariant_features(particles, batch_size=64, angular=True):
    """Standardised rotation-invariant descriptors (N, d) of a ``ParticleStack``; without
    ``angular``, the radial power spectrum and the density profile alone."""
    desc = InvariantDescriptor(particles.box, angular=angular)
    if angular:
        desc.fit_wedge(particles.iter_batches(None, batch_size))
    x = desc.transform(particles.iter_batches(None, batch_size)).astype(np.float64)
    return ((x - x.mean(0)) / (x.std(0) + 1e-9)).astype(np.float32)
