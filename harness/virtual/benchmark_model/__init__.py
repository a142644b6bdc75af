"""The virtual phone's emulated ``benchmark_model``: the official tool's flags and log format on
host LiteRT (:mod:`.tool`), its GPU-delegate emulation by kernel generation
(:mod:`.gpu_emulation`, :mod:`.gpu_kernels`), the flatbuffer reader it plans with
(:mod:`.tflite_graph`), and the fork server that runs it pre-imported (:mod:`.forkserver`,
:mod:`.client`). ``python -m harness.virtual.benchmark_model --graph=PATH [flags]`` runs it.
"""
