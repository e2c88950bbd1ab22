"""unik-target-unix: run a unik application as a Unix process."""

__version__ = "0.1.0"
