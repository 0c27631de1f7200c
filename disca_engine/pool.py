"""Threads for numpy work (alignment classification, rotations, DoG picking).

numpy releases the GIL in its FFTs, gathers and arithmetic, so chunks of subtomograms (or
pairs of references) run side by side in threads and use every core the run was given.
Each task writes its own rows or returns its own result, and results are combined in the
order of the tasks, so the numbers are the same for any number of workers.
"""
import os
from concurrent.futures import ThreadPoolExecutor


def available_cores():
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def resolve_workers(threads):
    """The run's ``threads`` setting (None or 0: every core this process may use)."""
    return max(1, int(threads)) if threads else available_cores()


def ordered_map(fn, items, workers):
    """[fn(x) for x in items], in threads when ``workers`` > 1. BLAS is held to one thread
    meanwhile: the pool already occupies the cores, and nested BLAS threads would only
    compete with it."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"), \
            ThreadPoolExecutor(min(int(workers), len(items))) as pool:
        return list(pool.map(fn, items))
