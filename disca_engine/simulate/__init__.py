"""Realistic cryo-ET simulator (numpy/scipy only): subtomograms and tomograms with
ground truth, from real complexes and procedural phantoms. See docs/simulator.md."""
from .subtomos import generate as generate_subtomograms
from .subtomos import simulate_subtomograms
from .templates import CLASS_SETS, CLASSES, resolve_classes, template
from .boxfiles import simulate_like_real, simulate_tiltseries_subtomograms
from .tiltsubtomos import generate_tiltseries_subtomograms
from .tomograms import generate_tomogram, simulate_tomograms

__all__ = ["simulate_subtomograms", "generate_subtomograms", "simulate_tomograms",
           "generate_tomogram", "simulate_tiltseries_subtomograms",
           "generate_tiltseries_subtomograms", "simulate_like_real", "CLASSES", "CLASS_SETS", "resolve_classes", "template"]
