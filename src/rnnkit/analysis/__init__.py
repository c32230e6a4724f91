"""Diagnostics: gradient flow, spectra, unit probes."""
