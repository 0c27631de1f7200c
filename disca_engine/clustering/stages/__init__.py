"""The stages of the default method's classification, in the order ``pipeline.classify``
runs them: descriptors, seeds, alignment, merge test, relabel, junk split. Each reads its
own settings (``disca_engine.settings``) and hands on a ``Classes``; the numerical kernels
they call live in ``clustering.align`` and take no settings."""
