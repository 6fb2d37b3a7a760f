"""Apps the benchmarks load, as files: `triggerfish dev` and `Platform` take them by path."""
