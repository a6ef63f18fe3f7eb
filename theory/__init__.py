"""Simulation notebooks for the paper's theoretical claims; see theory/README.md."""
