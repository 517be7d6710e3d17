"""Around the chapters: the demo, the exercises and their checks, the notebooks' install cell, the renderings.

- ``demo``: ``ftlab demo``, one whole round recorded in the lab.
- ``exercises``: learner copies of the exercise notebooks, generated from the solved ones.
- ``checks/``: one module per exercise; each check names what is wrong and the idea to revisit.
- ``install``: where ftlab comes from, and the setup cell that opens every notebook.
- ``renderings``: executed copies of the chapters for readers on GitHub.
- ``by_hand/``: LoRA and NF4 written out in a few lines of torch, checked against PEFT and bitsandbytes.
- ``pitfalls_shown``: pitfalls ftlab prevents silently (8, 10, 11, 12), made to strike once for chapters 03, 06, 07.

``demo`` and ``by_hand`` load transformers or torch as they are imported: import them by name.
"""

from ftlab.course import checks, exercises, install, renderings

__all__ = ["checks", "exercises", "install", "renderings"]
