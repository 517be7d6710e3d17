"""Files ftlab writes and reads: writes that appear whole or not at all, weight files streamed, its cache.

- ``atomic``: a folder, a text file or a JSON record written under a temporary name and renamed into place.
- ``safetensors``: safetensors headers and tensors read and written one at a time; the one dtype table.
- ``cache``: where ftlab keeps what it builds (the tiny model, dequantized GGUF models).

Standard library only at import (torch only when a tensor is made): every module may use it.
"""
