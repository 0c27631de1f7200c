"""DISCA clustering: the deep iterative loop and its numpy/scipy/sklearn building blocks.

Keep this file import-light: ``dataset``, ``augment``, ``stats``, ``labels`` and ``ddbi``
never import TensorFlow; only the network/training modules do, and only when used.
"""
