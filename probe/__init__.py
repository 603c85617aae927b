"""bytewatch's probe: HTTP/1.x bytes seen in the kernel, turned into typed exchanges.

Nothing here imports another first-party package. ``probe.loader`` is the only importer of
``bcc``; everything else is pure and runs without root.
"""
