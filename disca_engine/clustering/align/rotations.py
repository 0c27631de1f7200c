"""Rotations of the alignment: a near-uniform grid of SO(3), local perturbations, and
measured-voxel masks turned with a rotation. A rotation matrix acts on (x, y, z) about the
box centre and rotates the content (``augment.rotate_volumes``)."""
import numpy as np

from ..augment import quaternion_matrices, rotate_volumes

PHI, PSI = 2 ** 0.5, 1.533751168755204288118041  # super-Fibonacci constants (Alexa 2022)


def rotation_grid(n):
    """``n`` near-uniform rotations (super-Fibonacci spiral of unit quaternions)."""
    s = np.arange(int(n)) + 0.5
    r, big_r = np.sqrt(s / n), np.sqrt(1 - s / n)
    a, b = 2 * np.pi * s / PHI, 2 * np.pi * s / PSI
    q = np.stack([big_r * np.cos(b), r * np.sin(a), r * np.cos(a), big_r * np.sin(b)], axis=1)
    return quaternion_matrices(q).astype(np.float32)


def grid_step(n):
    """Typical angle (radians) between neighbouring rotations of an ``n``-rotation grid."""
    return float((8 * np.pi ** 2 / n) ** (1 / 3))


def perturbations(angle):
    """15 rotations: identity and turns by ``angle`` about 14 axes (faces and corners)."""
    corners = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).T.reshape(-1, 3) / 3 ** 0.5
    axes = list(np.eye(3)) + list(-np.eye(3)) + list(corners)
    q = [np.array([1.0, 0, 0, 0])] + [np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * a])
                                       for a in axes]
    return quaternion_matrices(np.array(q)).astype(np.float32)


def rotated_wedges(wedge, mats):
    """A measured-voxel mask (s^3, unshifted) turned by each matrix: (B, s, s, s), unshifted.
    The mask is rotated about the Fourier origin: padded to an odd box whose centre is the
    origin of the shifted spectrum."""
    s = wedge.shape[0]
    if s % 2:
        padded = np.fft.fftshift(wedge).astype(np.float32)
    else:
        padded = np.zeros((s + 1,) * 3, np.float32)
        padded[:s, :s, :s] = np.fft.fftshift(wedge)
    rot = rotate_volumes(np.repeat(padded[None], len(mats), 0), mats, np.random.default_rng(0),
                         noise_std=0.0)[:, :s, :s, :s]
    return np.fft.ifftshift(rot, axes=(1, 2, 3))
