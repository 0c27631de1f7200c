"""Real EMPIAR-10499 ribosome boxes next to boxes simulated "like the real data".

1. Reconstruction check: the 40 real particle tilt series of source/ reconstructed with the
   simulator's code (``likereal.reconstruct_real``) against the shipped subtomos/*.mrc:
   correlation per box and per Fourier shell.
2. Spectra: mean radial power per shell of the unit-variance boxes, real vs simulated, with
   and without the 3D shell gain fitted to the real boxes (the measured per-image noise alone).
3. Wedge coverage: the share of each shell's power per polar angle from the beam axis z
   (shells 3-14), real vs simulated; and the share of Fourier voxels that hold power.
4. Can the spectrum alone tell the sets apart? 5-fold cross-validated logistic regression on
   the boxes' log shell powers (0.5 = no).

Example (the run in benchmarks/results/compare_real_boxes.txt):
    nice -n 10 python benchmarks/compare_real_boxes.py --classes tric_ring --seed 0
"""
import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from disca_engine.simulate import likereal  # noqa: E402

REAL = os.path.join(ROOT, "tests", "data", "real", "empiar10499_ribosomes")
ANGLES = np.arange(0, 91, 15)


def unit(v):
    v = np.asarray(v, np.float64)
    v = v - v.mean(axis=(-3, -2, -1), keepdims=True)
    return v / v.std(axis=(-3, -2, -1), keepdims=True)


def reconstruction_check(real):
    boxes = real.boxes()
    mine = unit(np.stack([likereal.reconstruct_real(real, i) for i in range(len(real))]))
    cc = (mine * unit(boxes)).mean(axis=(1, 2, 3))
    shell = likereal.shell_index(real.size)
    a, b = np.fft.fftn(mine, axes=(1, 2, 3)), np.fft.fftn(unit(boxes), axes=(1, 2, 3))
    num = np.bincount(shell.ravel(), np.real(a * np.conj(b)).sum(0).ravel())
    den = np.sqrt(np.bincount(shell.ravel(), (np.abs(a) ** 2).sum(0).ravel())
                  * np.bincount(shell.ravel(), (np.abs(b) ** 2).sum(0).ravel()))
    print("1. Real tilt series reconstructed here vs the shipped boxes (40 particles)")
    print(f"   correlation per box: median {np.median(cc):.4f}, min {cc.min():.4f}, max {cc.max():.4f}")
    last = real.size // 2
    print("   correlation per shell 1..%d: %s" % (last - 1, " ".join(f"{v:.3f}" for v in (num / den)[1:last])))


def angular_share(vols, shell, band=(3, 14)):
    """Share of the power of shells in ``band`` per polar-angle bin from the z axis."""
    n = vols.shape[-1]
    k = np.fft.fftfreq(n) * n
    kz = np.broadcast_to(k[:, None, None], (n, n, n))
    r = np.sqrt(kz ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)
    theta = np.degrees(np.arccos(np.clip(np.abs(kz) / np.maximum(r, 1e-9), 0, 1)))
    power = (np.abs(np.fft.fftn(unit(vols), axes=(1, 2, 3))) ** 2).mean(0)
    sel = (shell >= band[0]) & (shell <= band[1])
    bins = np.digitize(theta[sel], ANGLES[1:-1])
    share = np.bincount(bins, power[sel], len(ANGLES) - 1)
    holds = power[sel] > 0.05 * np.median(power[sel])
    return share / share.sum(), holds.mean()


def spectrum_classifier(real_boxes, sim_boxes, shell):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    feats = []
    for v in np.concatenate([unit(real_boxes), unit(sim_boxes)]):
        p = np.abs(np.fft.fftn(v)) ** 2
        feats.append(np.log(np.bincount(shell.ravel(), p.ravel())[1:shell.shape[0] // 2]))
    y = np.r_[np.zeros(len(real_boxes)), np.ones(len(sim_boxes))]
    clf = LogisticRegression(max_iter=2000)
    return cross_val_score(clf, np.array(feats), y, cv=5).mean()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", default="tric_ring")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real", default=REAL)
    args = ap.parse_args()
    real = likereal.RealSet(args.real)
    t0 = time.time()
    reconstruction_check(real)
    print(f"   ({time.time() - t0:.1f} s)")
    t0 = time.time()
    sim = likereal.generate_like_real(args.real, args.classes, len(real), seed=args.seed)["data"]
    t_sim = time.time() - t0
    raw = likereal.generate_like_real(args.real, args.classes, len(real), seed=args.seed,
                                      match_spectrum=False)["data"]
    shell = likereal.shell_index(real.size)
    p_real = likereal.shell_power(real.boxes(), shell)
    p_sim, p_raw = likereal.shell_power(sim, shell), likereal.shell_power(raw, shell)
    last = real.size // 2
    print(f"\n2. Mean radial power, {len(real)} real ribosomes vs {len(sim)} simulated '{args.classes}' "
          f"(SNR {likereal.SNR:g}, seed {args.seed}; simulation {t_sim:.1f} s)")
    print("   shell  1/A       real   sim/real  sim/real without the 3D shell gain")
    for s in range(1, last):
        print(f"   {s:5d}  1/{real.size * real.voxel_a / s:5.0f}  {p_real[s]:9.1f}  {p_sim[s] / p_real[s]:7.3f}"
              f"  {p_raw[s] / p_real[s]:7.3f}")
    tail = lambda p: p[last:].sum() / p.sum()  # noqa: E731
    print(f"   share of power at shells >= {last}: real {tail(p_real):.1e}, sim {tail(p_sim):.1e}")
    share_r, hold_r = angular_share(real.boxes(), shell)
    share_s, hold_s = angular_share(sim, shell)
    print("\n3. Share of shell 3-14 power by polar angle from the beam axis z (missing wedge near 0)")
    print("   angle     real    sim   sim/real")
    for a0, a1, r, s in zip(ANGLES[:-1], ANGLES[1:], share_r, share_s):
        print(f"   {a0:2d}-{a1:2d}  {r:6.3f} {s:6.3f}  {s / r:6.3f}")
    print(f"   Fourier voxels of shells 3-14 holding > 5% of the median power: real {hold_r:.3f}, sim {hold_s:.3f}")
    acc = spectrum_classifier(real.boxes(), sim, shell)
    acc_raw = spectrum_classifier(real.boxes(), raw, shell)
    print(f"\n4. Real vs simulated from the log shell powers alone (5-fold CV logistic regression): "
          f"accuracy {acc:.3f} (without the 3D shell gain {acc_raw:.3f}; 0.5 = indistinguishable)")


if __name__ == "__main__":
    main()
