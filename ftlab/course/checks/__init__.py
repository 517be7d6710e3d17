"""Checks for the exercises: each says what is wrong and which idea to revisit, or confirms success.

An exercise cell marked ``# TODO`` is followed by a cell that calls one of these. A check never
just says "wrong", and never gives the expected answer away: it names the variable, says what is
wrong with it, and points to the idea to revisit. On success it prints a short confirmation and
returns ``True``. A failing check raises :class:`CheckFailed`, which Jupyter shows as its message
alone, without a traceback through ftlab's source. One module per exercise; every check is
reachable as ``ftlab.course.checks.check_...``, as the notebooks call them.
"""

from __future__ import annotations

from ftlab.course.checks.base import CheckFailed
from ftlab.course.checks.chat import check_chat_labels
from ftlab.course.checks.data import (
    check_dedup_balance,
    check_label_mask,
    check_prompt_matches,
    check_rows_fixed,
)
from ftlab.course.checks.export import check_merge_layer, check_merged_weight
from ftlab.course.checks.learning_rate import check_lr_advice, check_lr_reading, check_lr_rounds
from ftlab.course.checks.lora import (
    ATTENTION,
    check_lora_config,
    check_lora_param_count,
    check_trainable_share,
)
from ftlab.course.checks.memory import (
    PRECISION_DEVICES,
    TINYLLAMA,
    check_precision_choice,
    check_t4_predictions,
    check_tinyllama_lora_counts,
)
from ftlab.course.checks.metrics import check_cjk_rouge_tokenizer, check_em_f1_by_hand
from ftlab.course.checks.preference import check_dpo_loss, check_reward_margins
from ftlab.course.checks.repeats import check_effect_by_hand, check_failure_reading, check_repeats
from ftlab.course.checks.training import check_sft_step

__all__ = [
    "ATTENTION", "CheckFailed", "PRECISION_DEVICES", "TINYLLAMA", "check_chat_labels",
    "check_cjk_rouge_tokenizer", "check_dedup_balance", "check_dpo_loss", "check_effect_by_hand", "check_em_f1_by_hand",
    "check_failure_reading", "check_label_mask", "check_lora_config", "check_lora_param_count",
    "check_lr_advice", "check_lr_reading", "check_lr_rounds", "check_merge_layer", "check_merged_weight", "check_precision_choice",
    "check_prompt_matches", "check_repeats", "check_reward_margins", "check_rows_fixed", "check_sft_step",
    "check_t4_predictions",
    "check_tinyllama_lora_counts", "check_trainable_share",
]
