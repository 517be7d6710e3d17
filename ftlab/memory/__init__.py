"""Memory and speed before loading anything (chapter 02): will a round fit on the GPU, and how fast will it go?

- ``shapes``: a model's exact parameter counts from its config alone, and how TRL computes the loss.
- ``gpus``: the GPUs a plan can be made for, and the time estimate's constants (or a calibration file's).
- ``estimate``: ``plan``, the peak GPU memory of a round term by term, each with its formula, and the
  time of an epoch.
- ``suggestions``: ``suggest``, the fastest configuration that fits, chosen from the plan's predictions.
- ``measured_runs``: the plan's T4 times beside T4 runs others measured and published, each row's assumptions
  stated, the error of each (``compare()``).
- ``ram``: the memory this process holds (Linux counters), for the merge's plan against the RAM.

``ftlab.plan`` and ``ftlab.suggest`` are the public calls.
"""

from ftlab.memory import estimate, gpus, measured_runs, ram, shapes, suggestions
from ftlab.memory.estimate import Plan, plan
from ftlab.memory.shapes import PlanInputError, model_shape
from ftlab.memory.suggestions import Suggestion, suggest

__all__ = ["estimate", "gpus", "measured_runs", "model_shape", "Plan", "plan", "PlanInputError", "ram", "shapes", "suggest",
           "Suggestion", "suggestions"]
