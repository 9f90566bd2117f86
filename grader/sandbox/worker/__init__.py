"""Untrusted side of the trust boundary: runs student code and returns numbers only.

This package is mounted into the sandbox with the probe code and, of the rest
of the grader, only ``grader.sandbox.probing``; it imports nothing else of it. The
parent process never imports student code.
"""
