"""harness: train, convert, benchmark and diagnose portrait-segmentation models on phones."""

__version__ = "0.1.0"
