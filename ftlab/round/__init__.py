"""One fine-tuning round (chapters 00, 02 and 05): its knobs go in (``ftlab.config``), a trained adapter comes out.

- ``train``: ``train_round``, the course's main entry point: seed, check, put LoRA on, train through TRL.
- ``what_runs``: what the knobs become on this machine (precision, optimiser, quantization), each substitution recorded.
- ``rehearsal``: a T4 rehearsed on the CPU (``FTLAB_REHEARSE=T4``): its fp16 mixed precision run by the CPU, and
  what a rehearsed round records about itself.
- ``shared_base``: the tuned model is a new module tree over the caller's base weights (no second copy).
- ``useful_tokens``: how much of what the GPU computes is real text; the output layer scoring only the answers.
- ``progress``: what a round shows while it trains.
- ``trackers``: TensorBoard, wandb and trackio write into the round's folder, and never prompt for a login.
- ``lr_finder``: ``lr_find``, the learning-rate range test (throwaway adapters, the same round's code).

The lab (``ftlab.lab``) records each round; ``train_round`` itself knows no lab.
"""
