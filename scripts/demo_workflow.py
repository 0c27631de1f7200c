#!/usr/bin/env python
"""Headless DISCA demo with Scipion's Python API (run inside Scipion's environment).

synthetic tomograms -> import -> DoG picking -> extraction -> DISCA clustering (default
'auto' method, K found automatically) -> export of the clusters the clustering judged
structures (its default: half-set FSC and null ratio; subtomograms + coordinates + STAR files). At the end the clusters are compared with the simulation's truth: every picked
box is matched to the nearest simulated particle within 5 voxels (else it is junk: gold,
vesicle or empty), and a confusion table cluster x structure is printed.

    python scripts/demo_workflow.py --out demo-output

Every protocol is launched and waited for; a failure stops the demo with the tail of the
protocol's log. At the end the script prints where the results are.
"""
import argparse
import os
import sys
import threading
import time


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parseArgs():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--out', default='demo-output', help='folder for the data and the project')
    p.add_argument('--project', default='disca_demo', help='Scipion project name')
    p.add_argument('--tomograms', type=int, default=3)
    p.add_argument('--classes', type=int, default=5, help='simulated structures')
    p.add_argument('--particles', type=int, default=60, help='particles per tomogram')
    p.add_argument('--shape', default='64,200,200', help='tomogram size z,y,x in voxels')
    p.add_argument('--snr', type=float, default=0.1)
    p.add_argument('--voxel', type=float, default=14.0, help='voxel size in A')
    p.add_argument('--diameter', type=float, default=200.0, help='particle diameter in A for picking')
    p.add_argument('--box', type=int, default=24, help='subtomogram box in voxels')
    p.add_argument('--k-range', default='', help='upper bound of K (empty: automatic)')
    p.add_argument('--max-iterations', type=int, default=0, help='0: the preset default')
    p.add_argument('--epochs', type=int, default=0, help='training epochs per iteration (0: preset)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args()


def step(title):
    print('\n=== %s ===' % title, flush=True)


def logTail(prot, n=40):
    lines = []
    for path in prot.getLogPaths():
        if os.path.exists(path):
            with open(path, errors='replace') as fh:
                lines += ['%s: %s' % (os.path.basename(path), l.rstrip())
                          for l in fh.readlines()[-n:]]
    return '\n'.join(lines)


def run(project, prot, title):
    """Launch, wait, and stop the demo loudly when the protocol fails."""
    step(title)
    prot.setObjLabel(title)
    errors = prot.validate()
    if errors:
        sys.exit('DEMO FAILED: %s does not validate:\n  %s' % (title, '\n  '.join(errors)))
    t0 = time.time()
    done = threading.Event()
    tail = threading.Thread(target=follow, args=(prot, done), daemon=True)
    tail.start()
    try:
        project.launchProtocol(prot, wait=True)
    finally:
        done.set()
        tail.join()
    prot = project.getProtocol(prot.getObjId())
    if not prot.isFinished():
        print(logTail(prot), file=sys.stderr)
        sys.exit('DEMO FAILED: %s ended with status %s: %s\n(log: %s)'
                 % (title, prot.getStatus(), prot.getErrorMessage(), prot.getLogPaths()[0]))
    print('%s finished in %.0f s' % (title, time.time() - t0), flush=True)
    for line in prot.summary():
        print('  ' + line)
    return prot


def follow(prot, done, poll=1.0):
    """Echo the protocol's log to the terminal while it runs: the engine's progress lines
    (stage, rate, time left) would otherwise only reach the project's log files. Reads files
    only (the newest Runs/*_<protocol class>/logs/run.stdout of this launch); the launch
    itself stays in the main thread, which owns the project database."""
    import glob
    t0, path, pos = time.time() - 1, None, 0
    pattern = os.path.join('Runs', '*_' + prot.getClassName(), 'logs', 'run.stdout')
    while True:
        finished = done.is_set()
        if path is None:
            fresh = [p for p in glob.glob(pattern) if os.path.getmtime(p) >= t0]
            path = max(fresh, key=os.path.getmtime) if fresh else None
        if path:
            with open(path, errors='replace') as fh:
                fh.seek(pos)
                chunk = fh.read()
            # only whole lines; a line still being written waits for the next poll
            cut = len(chunk) if finished else chunk.rfind('\n') + 1
            for line in chunk[:cut].splitlines():
                if line.strip():
                    print('  | ' + line.rstrip(), flush=True)
            pos += len(chunk[:cut].encode('utf-8', 'replace'))
        if finished:
            return
        done.wait(poll)


def simulate(args, dataDir):
    from disca_engine.simulate.tomograms import simulate_tomograms
    shape = tuple(int(v) for v in args.shape.split(','))
    step('Simulating %d tomograms (%d structures, %d particles each, SNR %g)'
         % (args.tomograms, args.classes, args.particles, args.snr))
    paths, truth = simulate_tomograms(dataDir, n_tomograms=args.tomograms, shape=shape,
                                      voxel_A=args.voxel, classes=args.classes,
                                      n_particles=args.particles, snr=args.snr, seed=args.seed)
    return paths, truth


def createProject(args, location):
    """A new project stored in ``location`` (Scipion keeps a link to it in its projects folder)."""
    import shutil
    from pyworkflow.project import Manager
    manager = Manager()
    os.makedirs(manager.PROJECTS, exist_ok=True)  # a fresh SCIPION_USER_DATA has none yet
    path = os.path.join(location, args.project)
    link = manager.getProjectPath(args.project)
    if os.path.lexists(path) or os.path.lexists(link):
        # a rerun of the demo: its own earlier project is replaced, and the user told
        print('replacing the demo project of an earlier run: %s' % path, flush=True)
        for p in (link, path):
            if os.path.islink(p):
                os.remove(p)
            elif os.path.isdir(p):
                shutil.rmtree(p)
    project = manager.createProject(args.project, location=location)
    os.chdir(project.getPath())  # Scipion runs protocols with paths relative to the project
    return project


def main():
    args = parseArgs()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    t0 = time.time()

    import pwem
    pwem.Domain.getPlugins()
    from tomo.protocols import ProtImportTomograms
    from disca.protocols import (DiscaProtDogPicking, DiscaProtExtract, DiscaProtCluster,
                                 DiscaProtExport)
    from disca.constants import PRESET_CHOICES

    project = createProject(args, out)
    dataDir = os.path.join(out, 'tomograms')
    _, truthStar = simulate(args, dataDir)

    imp = run(project, project.newProtocol(
        ProtImportTomograms, filesPath=dataDir, filesPattern='tomo_*.mrc',
        samplingRate=args.voxel), 'import tomograms')
    pick = project.newProtocol(DiscaProtDogPicking, particleDiameter=args.diameter,
                               boxSize=args.box)
    pick.inputTomograms.set(imp)
    pick.inputTomograms.setExtended('Tomograms')
    pick = run(project, pick, 'DoG picking')

    extract = project.newProtocol(DiscaProtExtract, boxSize=args.box)
    extract.inputCoordinates.set(pick)
    extract.inputCoordinates.setExtended('coordinates')
    extract = run(project, extract, 'extract subtomograms')

    cluster = project.newProtocol(DiscaProtCluster, preset=PRESET_CHOICES.index('auto'),
                                  kRange=args.k_range, maxIterations=args.max_iterations,
                                  epochsPerIteration=args.epochs,
                                  seed=args.seed, numberOfThreads=args.threads, useGpu=False)
    cluster.inputSubtomos.set(extract)
    cluster.inputSubtomos.setExtended('subtomograms')
    cluster = run(project, cluster, 'DISCA clustering')

    # an empty field exports the clusters judged structures (the junk-like ones stay out)
    export = project.newProtocol(DiscaProtExport, classNumbers='')
    export.inputClasses.set(cluster)
    export.inputClasses.setExtended('classes')
    export = run(project, export, 'export clusters')

    report(project, cluster, export, time.time() - t0)
    confusion(os.path.join(os.path.abspath(cluster.getEngineOutputDir()), 'clusters.star'), truthStar)


def report(project, cluster, export, seconds):
    engineDir = os.path.abspath(cluster.getEngineOutputDir())
    step('Results (%.1f min)' % (seconds / 60))
    env = os.environ.get('DISCA_ENV_SH', os.path.join(REPO, '.work', 'env.sh'))  # set by demo.sh
    print('Project:          %s' % project.getPath())
    print('Open it with:     . %s && python -m scipion project %s'
          % (env, os.path.basename(project.getPath())))
    classes = cluster.classes
    print('Classes:          %s  (%d clusters: %s)' % (
        os.path.abspath(classes.getFileName()), classes.getSize(),
        ', '.join('%d: %d' % (c.getObjId(), c.getSize()) for c in classes.iterItems())))
    html = os.path.join(engineDir, 'report', 'index.html')
    if not os.path.exists(html):
        raise SystemExit('DISCA finished without its report %s: see the protocol log' % html)
    print('Report:           %s' % html)
    print('Label maps:       %s' % os.path.join(engineDir, 'report', 'labelmaps'))
    print('Plots:            %s' % os.path.join(engineDir, 'plots'))
    print('Class averages:   %s' % os.path.join(engineDir, 'averages'))
    print('Trained model:    %s' % os.path.join(engineDir, 'model'))
    for line in export.summary()[:1] + export.verdictLines(export.getChosenClasses()):
        print('Export:           %s' % line)
    for name, obj in export.iterOutputAttributes():
        print('Exported %-28s %d items  (%s)' % (name + ':', obj.getSize(), os.path.abspath(obj.getFileName())))
    print('STAR export:      %s' % os.path.abspath(export._getExtraPath()))


def confusion(clustersStar, truthStar, radius=5.0):
    """Print clusters x simulated structures: each box matched to the nearest true particle
    of its tomogram within ``radius`` voxels; unmatched boxes are junk picks."""
    import numpy as np
    from disca_engine.contract import TRUE_CLASS_NAME
    from disca_engine.io.star import read_star
    from disca_engine.simulate.truth import JUNK, coordinates, names_of_picks
    picks, truth = read_star(clustersStar), read_star(truthStar)
    cls = np.array(picks.column('rlnClassNumber', int))
    found = names_of_picks(picks.column('rlnTomoName'), coordinates(picks), truth, radius)
    names = sorted(set(truth.column(TRUE_CLASS_NAME))) + [JUNK]
    step('Clusters against the simulated truth (boxes within %g voxels of a true particle)' % radius)
    print('cluster | ' + ' | '.join('%9s' % n for n in names) + ' | purity')
    for c in np.unique(cls):
        row = [int(np.sum((cls == c) & (found == n))) for n in names]
        print('%7d | ' % c + ' | '.join('%9d' % v for v in row) + ' | %.2f' % (max(row) / sum(row)))
    for n in names[:-1]:  # where each structure went: clusters it dominates hold how much
        major = [c for c in np.unique(cls)
                 if max(names, key=lambda m: np.sum((cls == c) & (found == m))) == n]
        held = np.sum((found == n) & np.isin(cls, major)) / max(np.sum(found == n), 1)
        print('%-10s %3d picked, %3.0f%% in clusters where it is the majority (%s)'
              % (n, np.sum(found == n), 100 * held, ','.join(map(str, major)) or 'none'))


if __name__ == '__main__':
    main()
