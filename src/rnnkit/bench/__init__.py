"""Benchmarks: speed, memory and quality against the anchors (`rnnkit bench NAME`)."""
