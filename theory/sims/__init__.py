"""Simulation code shared by the theory notebooks (importable as ``theory.sims`` from the repo root)."""
