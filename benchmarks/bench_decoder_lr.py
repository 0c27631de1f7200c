"""Decoder learning rate at a fixed budget: N = 500 simulated subtomograms (5 classes, SNR 0.1,
features = class means + noise as in bench_report.py), 250 steps, then the averages/decoded
overview is drawn for a visual check.

    nice -n 10 /work/venvs/engine/bin/python benchmarks/bench_decoder_lr.py 0.001 0.003
"""
import sys, os, json, time, numpy as np
sys.path.insert(0, 'benchmarks')
from bench_report import build
from disca_engine.report.run import ClusterRun
from disca_engine.report.decoder import train_and_decode
from disca_engine.report import montage, plots
folder = '/tmp/dec_exp'
if not os.path.exists(folder + '/run/report.json'):
    build(folder, 500)
run = ClusterRun(folder + '/run')
for lr in (float(a) for a in sys.argv[1:]):
    out = f'{folder}/rep_{lr}'
    dec, info = train_and_decode(run, out, max_steps=250, max_seconds=400, learning_rate=lr)
    print(lr, info['steps'], info['seconds_train'], info['loss_first'], info['loss_last'], flush=True)
    montage.averages_overview(run, f'{out}/averages.png', plots.cluster_colors(run.k), dec)
