"""Evaluation (chapters 00, 03 and 06): is the tuned model better, and how does it answer?

- ``metrics``: text metrics on answers (BLEU, ROUGE, exact match, F1, numbers), Chinese included; no torch.
- ``generation``: asking a model the way it was trained (its template, batched, stopping at end of turn).
- ``scoring``: perplexity on the answers, text metrics on generated answers, base against tuned.
- ``chat``: a conversation that keeps its history and streams; decoding settings against repetition.
- ``before_training``: the checks a careful engineer runs first (the loss against ln V, token by token).
"""

from ftlab.evaluation import before_training, chat, generation, metrics, scoring
from ftlab.evaluation.generation import answers, generate
from ftlab.evaluation.scoring import Evaluation, base_vs_tuned, discriminates, evaluate, mean_nll, perplexity

__all__ = ["Evaluation", "answers", "base_vs_tuned", "before_training", "chat", "discriminates", "evaluate", "generate",
           "generation", "mean_nll", "metrics", "perplexity", "scoring"]
