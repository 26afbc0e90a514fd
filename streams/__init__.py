from engagement_monitor.native import verify as _verify_native

_verify_native()  # compiled modules of this package must match their sources
