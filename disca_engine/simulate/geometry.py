"""Random rotations and placing a rotated, shifted template in a box."""
import numpy as np
from scipy import ndimage

# reverses axis order: converts matrices between [x, y, z] and [z, y, x] index space
_REV = np.eye(3)[::-1]


def random_rotations(rng, n):
    """``n`` uniformly distributed rotation matrices (xyz convention), from normalised
    4D Gaussian quaternions (uniform on SO(3))."""
    q = rng.standard_normal((n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def xyz_to_zyx(rot):
    """The same rotation acting on [z, y, x] index vectors."""
    return _REV @ rot @ _REV


def box_grid(size):
    """Voxel index offsets (3, size^3) [z, y, x] from the box centre ``size // 2``."""
    ax = np.arange(size) - size // 2
    return np.stack(np.meshgrid(ax, ax, ax, indexing="ij")).reshape(3, -1).astype(np.float64)


def place(template, rot_xyz, shift_zyx, size, grid=None, out=None):
    """Render ``template`` rotated by ``rot_xyz`` (template -> particle) with its centre of
    mass at ``size // 2 + shift_zyx`` in a cube of ``size`` voxels (linear interpolation)."""
    if grid is None:
        grid = box_grid(size)
    r = xyz_to_zyx(np.asarray(rot_xyz))
    # output voxel o shows the template at com + R^T (o - centre - shift)
    coords = r.T @ (grid - np.asarray(shift_zyx, float)[:, None]) + template.com[:, None]
    res = ndimage.map_coordinates(template.vol, coords, order=1, mode="constant", cval=0.0,
                                  output=np.float32)
    res = res.reshape(size, size, size)
    if out is not None:
        out[...] = res
        return out
    return res
