"""Projections of a volume along each image's beam, and the two reconstructions.

Geometry as in ``tiltseries``: volumes [z, y, x], images [v, u], rotations with rows U, V, W
in the volume's (x, y, z) frame; image pixel (v, u) with index (n // 2, n // 2) sees the ray
through the projection centre.

- ``project``: line integrals sampled every voxel along W with trilinear interpolation (real
  space, so nothing wraps around, and any geometry, including the measured per-image
  matrices of a real tilt series).
- ``insert``: subtomograms by direct Fourier insertion, as WarpTools and RELION make them
  (and as the real EMPIAR boxes of tests/data/real were made): each image's 2D spectrum is
  splatted trilinearly onto the 3D grid along its central plane and the grid is divided by
  the summed splat weights where they exceed 1. That division is the weighting of weighted
  back-projection for any geometry (near the origin, where planes overlap, a Fourier voxel
  is the mean of many samples; far out, where they are sparse, it is one); no ramp filter
  has to be designed for irregular or multi-axis series. One inverse FFT per box, and the
  interpolation blur and wedge shape are those of the real boxes (their reconstruction with
  this code correlates 0.988 with them; benchmarks/compare_real_boxes.py).
- ``backproject``: tomograms by real-space weighted back-projection (IMOD's method): each
  image is ramp-filtered along u (perpendicular to the tilt axis y) and smeared back along its
  rays. A Fourier grid the size of a tomogram would wrap streaks around in z; this does not.
"""
import numpy as np
from scipy import fft as sfft
from scipy import ndimage

_REV = [2, 1, 0]  # (x, y, z) <-> [z, y, x]


def _t_range(shape, rotation, centre):
    """Range of ray parameters t along W that can meet the volume (from its corners)."""
    corners = np.array(np.meshgrid(*[[-0.5, s - 0.5] for s in shape], indexing="ij")).reshape(3, -1)
    rel = corners - np.asarray(centre, float)[:, None]           # [z, y, x]
    t = rotation[2][_REV] @ rel
    return np.floor(t.min()), np.ceil(t.max())


def project(volume, rotations, image_shape, centre=None, max_points=2_000_000):
    """(n_images, nv, nu) float32 ray sums of ``volume`` through images of ``image_shape``
    whose central pixel sees ``centre`` ([z, y, x] voxels; default the volume's centre)."""
    volume = np.asarray(volume, np.float32)
    nv, nu = image_shape
    centre = np.array(volume.shape) // 2 if centre is None else np.asarray(centre, float)
    u = np.arange(nu, dtype=np.float64) - nu // 2
    out = np.zeros((len(rotations), nv, nu), np.float32)
    for j, rot in enumerate(np.asarray(rotations, float)):
        r = rot[:, _REV]                                        # rows U, V, W in [z, y, x]
        t0, t1 = _t_range(volume.shape, rot, centre)
        t = np.arange(t0, t1 + 1)
        rows = max(1, int(max_points // (len(t) * nu)))
        for v0 in range(0, nv, rows):
            v = np.arange(v0, min(nv, v0 + rows), dtype=np.float64) - nv // 2
            # point = centre + u U + v V + t W, for all (t, v, u)
            pts = (centre[:, None, None, None]
                   + r[0][:, None, None, None] * u[None, None, None, :]
                   + r[1][:, None, None, None] * v[None, None, :, None]
                   + r[2][:, None, None, None] * t[None, :, None, None])
            vals = ndimage.map_coordinates(volume, pts.reshape(3, -1), order=1, mode="constant",
                                           cval=0.0, output=np.float32, prefilter=False)
            out[j, v0:v0 + len(v)] = vals.reshape(len(t), len(v), nu).sum(0)
    return out


def _splat(coords, values, n, power=None):
    """Trilinear splat of complex ``values`` (c, m) at grid ``coords`` (m, 3) [z, y, x] onto
    a periodic n^3 grid. Returns the summed weighted values (c, n^3), the summed weights
    (n^3,) and, for a real ``power`` (m,), the sum of power x weight^2 (n^3,)."""
    base = np.floor(coords)
    frac = coords - base
    base = base.astype(np.int64)
    size = n ** 3
    acc = np.zeros((len(values), size), complex)
    acc_w = np.zeros(size)
    acc_p = None if power is None else np.zeros(size)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                w = ((frac[:, 0] if dz else 1 - frac[:, 0]) * (frac[:, 1] if dy else 1 - frac[:, 1])
                     * (frac[:, 2] if dx else 1 - frac[:, 2]))
                idx = (((base[:, 0] + dz) % n) * n + (base[:, 1] + dy) % n) * n + (base[:, 2] + dx) % n
                for c, val in enumerate(values):
                    acc[c] += np.bincount(idx, w * val.real, size)
                    acc[c] += 1j * np.bincount(idx, w * val.imag, size)
                acc_w += np.bincount(idx, w, size)
                if power is not None:
                    acc_p += np.bincount(idx, w * w * power, size)
    return acc, acc_w, acc_p


def insert(images, rotations, filters=None, noise_power=None):
    """Volumes [z, y, x] from square images by direct Fourier insertion (module docstring).

    ``images`` (m, n, n), or (c, m, n, n) for c image sets sharing the geometry (signal,
    clutter, noise: linear, so reconstructed apart); ``filters`` (m, n, n) multiply each
    image's fft2 first. Frequencies beyond Nyquist (|k| > n/2) are left out, so every shell
    is isotropic. Returns the n^3 float32 volume (or (c, n, n, n)); with ``noise_power``
    (m, n, n), the expected |fft2|^2 of the noise in each image, also the expected variance
    of that noise in the reconstruction (Parseval over the inserted samples)."""
    images = np.asarray(images, np.float64)
    single = images.ndim == 3
    stack = images[None] if single else images
    c, m, n = stack.shape[0], stack.shape[1], stack.shape[-1]
    spec = sfft.fft2(sfft.ifftshift(stack, axes=(-2, -1)), axes=(-2, -1))
    gain = np.ones((m, n, n)) if filters is None else np.asarray(filters)
    spec *= gain
    k = sfft.fftfreq(n) * n
    kv, ku = np.meshgrid(k, k, indexing="ij")
    inside = (kv ** 2 + ku ** 2 <= (n / 2) ** 2).ravel()
    rot = np.asarray(rotations, float)[:, :2, :][:, :, _REV]      # U, V in [z, y, x]
    coords = (ku.ravel()[None, :, None] * rot[:, None, 0, :]
              + kv.ravel()[None, :, None] * rot[:, None, 1, :])    # (m, n^2, 3)
    power = None
    if noise_power is not None:
        power = (np.asarray(noise_power) * np.abs(gain) ** 2).reshape(m, -1)[:, inside].ravel()
    grid, weight, acc_p = _splat(coords[:, inside].reshape(-1, 3),
                                 spec.reshape(c, m, -1)[:, :, inside].reshape(c, -1), n, power)
    norm = np.maximum(weight, 1.0)
    grid /= norm
    vol = sfft.fftshift(sfft.ifftn(grid.reshape(c, n, n, n), axes=(1, 2, 3)).real, axes=(1, 2, 3))
    vol = vol[0] if single else vol
    if noise_power is None:
        return vol.astype(np.float32)
    expected = acc_p / norm ** 2
    return vol.astype(np.float32), float((expected.sum() - expected[0]) / float(n) ** 6)


def ramp_filter(images):
    """Ramp |k_u| along u (the image axis perpendicular to a tilt axis along v), on a grid
    padded to twice the width so the filter does not wrap around."""
    nu = images.shape[-1]
    npad = sfft.next_fast_len(2 * nu, real=True)
    ramp = np.abs(sfft.rfftfreq(npad)).astype(np.float32)
    ramp[0] = ramp[1] / 4  # the discrete ramp's mean term: keeps the low frequencies' level
    spec = sfft.rfft(images, n=npad, axis=-1)
    spec *= ramp
    return sfft.irfft(spec, n=npad, axis=-1)[..., :nu].astype(np.float32)


def backproject(images, rotations, shape, centre=None, max_points=4_000_000):
    """Volume of ``shape`` [z, y, x] from ramp-filtered images (m, nv, nu): every voxel adds
    the bilinearly interpolated value where its ray meets each image."""
    nz, ny, nx = shape
    nv, nu = images.shape[-2:]
    centre = np.array(shape) // 2 if centre is None else np.asarray(centre, float)
    vol = np.zeros(shape, np.float32)
    y = np.arange(ny) - centre[1]
    x = np.arange(nx) - centre[2]
    planes = max(1, int(max_points // (ny * nx)))
    for img, rot in zip(images, np.asarray(rotations, float)):
        for z0 in range(0, nz, planes):
            z = np.arange(z0, min(nz, z0 + planes)) - centre[0]
            p = np.stack(np.meshgrid(x, y, z, indexing="ij"))      # (x, y, z) relative
            u = np.tensordot(rot[0], p, 1) + nu // 2
            v = np.tensordot(rot[1], p, 1) + nv // 2
            vals = ndimage.map_coordinates(img, np.stack([v.ravel(), u.ravel()]), order=1,
                                           mode="constant", cval=0.0, output=np.float32,
                                           prefilter=False)
            vol[z0:z0 + len(z)] += vals.reshape(nx, ny, len(z)).transpose(2, 1, 0)
    return vol
