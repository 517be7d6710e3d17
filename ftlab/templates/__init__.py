"""One template for training and inference (chapters 00, 01 and 06): what the model sees, and which tokens carry the loss.

- ``template``: ``Template``, the model's own chat format (or Alpaca's, or a Jinja text) for training and
  for answering alike, checked token by token.
- ``masks``: which tokens carry the loss (the answers of every turn and their end-of-turn token), derived
  from the template itself, and drawn as text to look at.
- ``lengths``: how long rows are in tokens once templated: what gets cut, and what padding wastes.

Rows come from ``ftlab.data``; a round (``ftlab.round``) trains on what the template makes of them.
"""

from ftlab.templates import lengths, masks, template
from ftlab.templates.lengths import LengthReport, length_report, token_lengths
from ftlab.templates.masks import LossMask, TemplateError, loss_mask
from ftlab.templates.template import CHAT_TEMPLATE, Template

__all__ = ["CHAT_TEMPLATE", "LengthReport", "LossMask", "Template", "TemplateError", "length_report", "lengths",
           "loss_mask", "masks", "template", "token_lengths"]
