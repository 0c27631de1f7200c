"""Numerical kernels of the alignment classification, without settings: Fourier helpers,
rotations, the aligned stack, the rotation scan, averages, hard-EM rounds and the pairwise
agreement of averages. Numpy/scipy only."""
