"""How the emulated ``benchmark_model`` stops: an error status, or a fatal log line."""


class Failed(Exception):
    """Init or a run returned an error status: the tool prints ``Benchmarking failed.``"""


class Fatal(Exception):
    """TFLITE_LOG(FATAL): the tool prints ``FATAL: ...`` and aborts."""
