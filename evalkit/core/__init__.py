"""The pure core: strings and numbers in, dataclasses out; no torch, no files, no pytest."""
