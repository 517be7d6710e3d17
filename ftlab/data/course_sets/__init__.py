"""The course's own data sets, made offline and deterministically (same seed, same rows).

- ``synthetic``: the skills ftlab's tiny model is pre-trained on, and the course's tasks with their
  train/eval splits (``course_set``: distinct prompts, held-out names).
- ``arithmetic``: seed 001's kind of arithmetic word problems, in English and Chinese.
- ``starter_set``: a small general instruction set written for ftlab; Alpaca when the Hub is reachable.
- ``dialogues``: multi-turn conversations whose last answer depends on the first turn (chapter 06).
- ``python_docs``: real English questions and answers read from the Python standard library's own
  documentation (its docstrings and the language reference pydoc ships), PSF-2.0: the offline stand-in
  for seed 003's 2,600 Alpaca rows.

``ftlab.data`` names the functions; this package adds nothing to them.
"""
