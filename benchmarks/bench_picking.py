"""Speed and memory of DoG picking and extraction, next to the plain scipy approach.

Writes a synthetic tomogram (dark Gaussian blobs in white noise) as MRC, then runs each
stage in its own child process so every peak-RSS number belongs to that stage only:

- ``engine``: ``pick_file`` (FFT DoG in z-chunks, threshold-first peaks, KD-tree suppression)
- ``plain``:  two full ``scipy.ndimage.gaussian_filter`` + ``maximum_filter`` on the same
              volume, same threshold and suppression; its picks are compared with the engine's
              in the interior
- ``extract``: cutting N boxes of 24^3 by slicing from the memory-mapped tomogram (in memory),
              writing a subset as MRC files with ``extract_file``, and all N into one MRC
              stack with ``extract_file(stack=True)`` (both include the tomogram's NaN scan)
- ``preview``: ``dog_preview`` of the middle slice (what a GUI wizard calls)
- ``copy``:   memory-copy bandwidth of this machine (np.copyto, 256 MiB, best of 5)

Example (the 1 GiB run in benchmarks/results/picking.md):
    nice -n 10 python benchmarks/bench_picking.py --shape 256 1024 1024 --workdir /tmp/bench_pick
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

VOX = 14.0
DIAM = 250.0  # ribosome-sized: radius 8.9 voxels at 14 A


def peak_rss_mib():
    """Peak resident memory of this process in MiB (getrusage). ru_maxrss survives exec, so
    every stage runs in a child of a small parent (the tomogram is made in a child too)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def vm_hwm_mib():
    """Peak resident memory from /proc/self/status (Linux; reset at exec), or None."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None


def cpu_seconds():
    """User + system CPU time of this process (less sensitive than wall time to other
    jobs sharing the cores)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_tomogram(path, shape, n_particles, seed=0):
    from disca_engine.io.mrc import write_volume
    rng = np.random.default_rng(seed)
    vol = rng.standard_normal(size=shape, dtype=np.float32)
    r = int(DIAM / VOX / 2)
    zz, yy, xx = np.indices((2 * r + 1,) * 3, dtype=np.float32) - r
    blob = (-2.0 * np.exp(-(xx ** 2 + yy ** 2 + zz ** 2) / (2 * (r / 2.0) ** 2))).astype(np.float32)
    lo = np.array([r, r, r])
    hi = np.array(shape) - r - 1
    centres = rng.integers(lo, hi, size=(n_particles, 3))
    for z, y, x in centres:
        vol[z - r:z + r + 1, y - r:y + r + 1, x - r:x + r + 1] += blob
    write_volume(path, vol, VOX)
    return centres[:, ::-1]


def stage_engine(args):
    from disca_engine.picking import pick_file
    c0, t0 = cpu_seconds(), time.perf_counter()
    res = pick_file(args.tomo, os.path.join(args.workdir, "engine.star"), DIAM, quiet=True, overwrite=True,
                    workers=args.workers)
    total, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    np.savez(os.path.join(args.workdir, "engine_picks.npz"), xyz=res.xyz, scores=res.scores)
    return dict(seconds_total=total, cpu_seconds=cpu, seconds=res.seconds, n_picks=len(res), n_candidates=res.n_candidates,
                threshold=res.threshold, sigma1=res.params.sigma1_vox, sigma2=res.params.sigma2_vox,
                border=res.params.border_vox, min_distance=res.params.min_distance_vox,
                peak_rss_mib=peak_rss_mib(), vm_hwm_mib=vm_hwm_mib())


def stage_preview(args):
    from disca_engine.picking import dog_preview
    from disca_engine.picking.volume import FileSource
    t0 = time.perf_counter()
    p = dog_preview(FileSource(args.tomo), VOX, DIAM, workers=args.workers)
    return dict(seconds=time.perf_counter() - t0, n_picks_near_slice=len(p.picks),
                threshold=p.threshold, peak_rss_mib=peak_rss_mib(), vm_hwm_mib=vm_hwm_mib())


def stage_plain(args):
    from scipy import ndimage
    from scipy.spatial import cKDTree
    from disca_engine.io.mrc import read_volume
    from disca_engine.picking.peaks import suppress
    eng = json.load(open(os.path.join(args.workdir, "engine.json")))
    vol = np.array(read_volume(args.tomo, mmap=True))
    s1, s2, thr = eng["sigma1"], eng["sigma2"], eng["threshold"]
    t = {}
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    dog = ndimage.gaussian_filter(vol, s2)
    dog -= ndimage.gaussian_filter(vol, s1)  # dark particles positive
    t["dog"] = time.perf_counter() - t0
    del vol
    t0 = time.perf_counter()
    peaks = (dog == ndimage.maximum_filter(dog, size=3)) & (dog > thr)
    b = eng["border"]
    inner = np.zeros_like(peaks)
    inner[b:-b, b:-b, b:-b] = True
    zyx = np.argwhere(peaks & inner)
    vals = dog[tuple(zyx.T)]
    t["peaks"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    keep = suppress(zyx, vals, eng["min_distance"])
    t["suppress"] = time.perf_counter() - t0
    xyz = zyx[keep][:, ::-1].astype(float)
    # compare with the engine in the interior (away from the faces by the DoG halo)
    e = np.load(os.path.join(args.workdir, "engine_picks.npz"))
    margin = int(np.ceil(4 * s2)) + b
    shape = np.array(dog.shape[::-1])

    def interior(p):
        return p[np.all((p >= margin) & (p < shape - margin), axis=1)]
    np.savez(os.path.join(args.workdir, "plain_picks.npz"), xyz=xyz, scores=vals[keep])
    ea, pa = interior(e["xyz"]), interior(xyz)
    a, c = {tuple(p) for p in ea}, {tuple(p) for p in pa}
    # picks found by only one method: how far is the other method's nearest pick?
    only = [np.array(sorted(a - c)).reshape(-1, 3), np.array(sorted(c - a)).reshape(-1, 3)]
    dist = [cKDTree(other).query(o)[0].tolist() if len(o) and len(other) else []
            for o, other in zip(only, (pa, ea))]
    return dict(only_engine_nearest_plain=dist[0], only_plain_nearest_engine=dist[1],seconds=t, seconds_total=sum(t.values()), cpu_seconds=cpu_seconds() - c0, n_picks=len(keep), peak_rss_mib=peak_rss_mib(), vm_hwm_mib=vm_hwm_mib(),
                interior_engine=len(a), interior_plain=len(c), interior_common=len(a & c))


def stage_extract(args):
    from disca_engine.extraction import extract_boxes, extract_file
    from disca_engine.io.mrc import read_volume
    from disca_engine.io.star import StarTable, write_star
    e = np.load(os.path.join(args.workdir, "engine_picks.npz"))
    vol = read_volume(args.tomo, mmap=True)
    rng = np.random.default_rng(1)
    shape = np.array(vol.shape[::-1])
    xyz = np.concatenate([e["xyz"], rng.uniform(12, shape - 13, size=(args.n_boxes, 3))])[:args.n_boxes]
    t0 = time.perf_counter()
    boxes, kept = extract_boxes(vol, xyz, 24)
    t_mem = time.perf_counter() - t0
    n_write = min(args.n_write, len(xyz))
    tab = StarTable(name="coordinates")
    for k, a in enumerate("XYZ"):
        tab[f"rlnCoordinate{a}"] = [f"{v:.2f}" for v in xyz[:n_write, k]]
    cs = os.path.join(args.workdir, "extract_coords.star")
    write_star(cs, tab)
    t0 = time.perf_counter()
    s = extract_file(args.tomo, cs, 24, os.path.join(args.workdir, "extract_out"), quiet=True)
    t_file = time.perf_counter() - t0
    tab = StarTable(name="coordinates")
    for k, a in enumerate("XYZ"):
        tab[f"rlnCoordinate{a}"] = [f"{v:.2f}" for v in xyz[:, k]]
    cs_all = os.path.join(args.workdir, "extract_coords_all.star")
    write_star(cs_all, tab)
    t0 = time.perf_counter()
    st = extract_file(args.tomo, cs_all, 24, os.path.join(args.workdir, "extract_stack"), quiet=True,
                      stack=True)
    t_stack = time.perf_counter() - t0
    return dict(n_boxes=int(kept.sum()), seconds_memory=t_mem, boxes_per_s_memory=kept.sum() / t_mem,
                voxels_per_s_memory=kept.sum() * 24 ** 3 / t_mem, n_written=s.n_extracted,
                seconds_files=t_file, boxes_per_s_files=s.n_extracted / t_file,
                n_stack=st.n_extracted, seconds_stack=t_stack, boxes_per_s_stack=st.n_extracted / t_stack, peak_rss_mib=peak_rss_mib(), vm_hwm_mib=vm_hwm_mib())


def stage_copy(args):
    n = 64 * 1024 * 1024
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    best = min(_timed(np.copyto, dst, src) for _ in range(5))
    return dict(bytes=n * 4, seconds=best, gb_per_s=2 * n * 4 / best / 1e9)  # read + write


def _timed(f, *a):
    t0 = time.perf_counter()
    f(*a)
    return time.perf_counter() - t0


def stage_make(args):
    t0 = time.perf_counter()
    centres = make_tomogram(args.tomo, tuple(args.shape), args.particles)
    return dict(seconds=time.perf_counter() - t0, n_particles=len(centres))


STAGES = {"make": stage_make, "engine": stage_engine, "preview": stage_preview, "plain": stage_plain, "extract": stage_extract, "copy": stage_copy}


def run_child(args, stage):
    cmd = [sys.executable, __file__, "--stage", stage, "--workdir", args.workdir, "--tomo", args.tomo,
           "--n-boxes", str(args.n_boxes), "--n-write", str(args.n_write),
           "--shape", *map(str, args.shape), "--particles", str(args.particles)]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    subprocess.run(cmd, check=True)
    with open(os.path.join(args.workdir, f"{stage}.json")) as fh:
        return json.load(fh)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", type=int, nargs=3, default=[128, 512, 512], metavar=("Z", "Y", "X"))
    p.add_argument("--workdir", default="/tmp/bench_pick")
    p.add_argument("--particles", type=int, default=None, help="default: 1 per 2^17 voxels")
    p.add_argument("--n-boxes", type=int, default=10000)
    p.add_argument("--n-write", type=int, default=1000)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--skip-plain", action="store_true")
    p.add_argument("--reuse-tomogram", action="store_true",
                   help="use WORKDIR/tomo.mrc from an earlier run with the same shape and seed")
    p.add_argument("--stages", nargs="+", choices=[k for k in STAGES if k != "make"],
                   help="run only these stages (default: all); 'plain' and 'extract' need 'engine' "
                        "results in WORKDIR")
    p.add_argument("--stage", choices=list(STAGES), help=argparse.SUPPRESS)
    p.add_argument("--tomo", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.stage:
        out = STAGES[args.stage](args)
        with open(os.path.join(args.workdir, f"{args.stage}.json"), "w") as fh:
            json.dump(out, fh, indent=1, default=float)
        return
    os.makedirs(args.workdir, exist_ok=True)
    args.tomo = os.path.join(args.workdir, "tomo.mrc")
    n_vox = int(np.prod(args.shape))
    args.particles = args.particles or max(10, n_vox // 2 ** 17)
    if args.reuse_tomogram and os.path.isfile(args.tomo):
        print(f"reusing {args.tomo}", flush=True)
    else:
        made = run_child(args, "make")
        print(f"tomogram {args.shape} ({n_vox * 4 / 2 ** 30:.2f} GiB), {args.particles} blobs, written in "
              f"{made['seconds']:.1f}s", flush=True)
    res = {"load_average_before": os.getloadavg()[0], "shape_zyx": args.shape, "tomogram_mib": n_vox * 4 / 2 ** 20, "cpus": os.cpu_count(),
           "numpy": np.__version__}
    stages = args.stages or ["copy", "engine", "preview"] + ([] if args.skip_plain else ["plain"]) + ["extract"]
    for stage in stages:
        res[stage] = run_child(args, stage)
        res[stage]["load_average_after"] = os.getloadavg()[0]
        print(stage, json.dumps(res[stage], default=float), flush=True)
    if "engine" not in res:
        print(json.dumps(res, indent=1, default=float))
        return
    e = res["engine"]
    res["engine"]["dog_voxels_per_s"] = n_vox / e["seconds"]["dog"]
    res["engine"]["peaks_voxels_per_s"] = n_vox / (e["seconds"]["threshold"] + e["seconds"]["peaks"])
    res["engine"]["rss_over_tomogram"] = e["peak_rss_mib"] / res["tomogram_mib"]
    if "plain" in res:
        res["plain"]["dog_voxels_per_s"] = n_vox / res["plain"]["seconds"]["dog"]
        res["plain"]["peaks_voxels_per_s"] = n_vox / res["plain"]["seconds"]["peaks"]
        res["speedup_dog"] = res["plain"]["seconds"]["dog"] / e["seconds"]["dog"]
        res["speedup_total"] = res["plain"]["seconds_total"] / e["seconds_total"]
    with open(os.path.join(args.workdir, "summary_" + "_".join(stages) + ".json"), "w") as fh:
        json.dump(res, fh, indent=1, default=float)
    print(json.dumps(res, indent=1, default=float))


if __name__ == "__main__":
    main()
