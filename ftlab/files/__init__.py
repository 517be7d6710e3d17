"""Files ftlab writes and reads: writes that appear whole or not at all, weight files streamed, its cache.

- ``atomic``: a folder, a file or a JSON record written under a temporary name and renamed into place; the
  one rule for outputs (``claim``: never over what ftlab did not write, unless asked to replace it).
- ``records``: the one reader of JSON records and text files, naming the file and line when one cannot be read.
- ``faults``: what ftlab says about a damaged, cut-short or non-UTF-8 file, an occupied output, a full disk.
- ``safetensors``: safetensors headers and tensors read and written one at a time, checked against the file's
  size and the bytes read; the one dtype table.
- ``cache``: where ftlab keeps what it builds (the tiny model, dequantized GGUF models).

Standard library only at import (torch only when a tensor is made): every module may use it.
"""
