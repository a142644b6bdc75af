"""The virtual phone: a lab instrument that speaks the ADB device protocol on 127.0.0.1 and runs
an emulated ``benchmark_model`` (:mod:`harness.virtual.benchmark_model`). It uses the device
layer's wire codec and key format (:mod:`harness.devices.wire`, :mod:`harness.devices.adbkey`);
the device layer never imports it. See docs/virtual-phone.md.
"""
