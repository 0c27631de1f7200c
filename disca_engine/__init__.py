"""DISCA engine: template-free picking, subtomogram extraction and the DISCA deep
iterative subtomogram clustering method, independent of Scipion.

Numpy/scipy-only modules (picking, extraction, I/O, simulation) can be imported from
any environment; modules that need TensorFlow import it lazily.
"""
__version__ = "0.1.0"
