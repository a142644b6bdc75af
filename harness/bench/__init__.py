"""``harness bench``: latency and accuracy of variants on phones vs desktop references.

The pipeline is small typed stages, each testable alone: plan (resolve variants, delegates and
the eval set) -> stage (push binary, models, inputs; hash-cached) -> measure (latency pass,
accuracy pass) -> compare (metrics vs references) -> store (one transaction per cell).
"""
