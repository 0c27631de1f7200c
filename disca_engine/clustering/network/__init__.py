"""The DISCA network and its iteration loop: the YOPO-like model (``yopo``, ``model``), the
TensorFlow runtime (``runtime``), training (``training``), how each iteration's labels are
made (``labelling``), checkpoints (``checkpoint``) and the loop itself (``loop``). Only these
modules import TensorFlow, and only when a run starts."""
