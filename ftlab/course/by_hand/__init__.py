"""What the libraries do, written out in a few lines of torch: LoRA's layer (chapter 00), NF4 (chapter 02) and
the DPO loss (chapter 08).

Each is checked against the library it imitates (PEFT's ``lora.Linear``, bitsandbytes' NF4, TRL's DPO loss); the course shows
the code with ``inspect.getsource`` rather than redefining it in a notebook.
"""
