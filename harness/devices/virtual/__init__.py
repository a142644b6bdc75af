"""The virtual phone: an ADB device endpoint on 127.0.0.1 (see docs/virtual-phone.md)."""
