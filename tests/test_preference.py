"""Preference rounds (chapter 08): pairs and their checks, the DPO loss by hand against TRL's, the plan's terms,
the held-out measures, and a preference round in the lab beside its SFT round, with its guard rails."""

import json
import math
from pathlib import Path

import pytest

from ftlab.config import ConfigError, PreferenceConfig, RoundConfig
from ftlab.data.errors import DataFormatError
from ftlab.data.preference_pairs import load_pairs, pairs_from_rows, repeated

FIXTURES = Path(__file__).parent / "fixtures" / "preference"
PROMPT = [{"role": "user", "content": "Greet Ann politely."}]


def chat_pair(chosen="Good day to you, Ann.", rejected="Hi."):
    return {"prompt": PROMPT, "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}


# ------------------------------------------------------------------------------------------------ config
def test_preference_config_checks_its_knobs_and_the_shared_ones_by_roundconfigs_rules():
    config = PreferenceConfig.preset("cpu-small")
    for knobs, named in ((dict(beta=0), "beta"), (dict(beta=-0.1), "beta"), (dict(loss_type="kto"), "loss_type"),
                         (dict(collapse_nats=0), "collapse_nats"), (dict(learning_rate=3), "learning_rate"),
                         (dict(batch_size=0), "batch_size"), (dict(max_steps=1.5), "max_steps")):
        with pytest.raises(ConfigError, match=rf"PreferenceConfig\.{named} ="):
            PreferenceConfig(**knobs)
    with pytest.raises(ConfigError, match="beta"):
        config.beta = 0
    assert config.beta == 0.1  # the refused value was not kept
    with pytest.raises(ConfigError, match="no preference preset for 'nope'"):
        PreferenceConfig.preset("nope")
    parent = RoundConfig.preset("cpu-small", lora_r=8, lora_alpha=16)
    knobs = config.round_config(parent)
    assert (knobs.lora_r, knobs.lora_alpha, knobs.learning_rate, knobs.max_steps) == (8, 16, config.learning_rate,
                                                                                       config.max_steps)
    assert "beta" in repr(config) and "How far the policy may move" in repr(config)


# ------------------------------------------------------------------------------------------------- pairs
def test_bad_pairs_are_named_by_file_row_and_field_all_at_once(tmp_path):
    rows = [chat_pair(), {"prompt": PROMPT, "chosen": [{"role": "assistant", "content": "Hello."}]},
            chat_pair("Same.", "Same."), {"prompt": "Greet Bo.", "chosen": "Hello, Bo.", "rejected": ""},
            {"prompt": [{"role": "assistant", "content": "x"}], "chosen": [{"role": "assistant", "content": "a"}],
             "rejected": [{"role": "assistant", "content": "b"}]},
            {"prompt": PROMPT, "chosen": [{"role": "narrator", "content": "a"}], "rejected": "b"}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataFormatError) as error:
        load_pairs(path)
    found = {(f.row, f.field) for f in error.value.findings}
    assert found == {(2, "rejected"), (3, "rejected"), (4, "rejected"), (5, "prompt"), (6, "chosen")}
    assert all(f.file == str(path) for f in error.value.findings)
    assert "equal to chosen" in str(error.value) and "user's" in str(error.value)


def test_a_prompt_the_template_cannot_render_is_named():
    def render(turns):
        if any(t["content"] == "unrenderable" for t in turns):
            raise ValueError("Conversation roles must alternate")
        return "ok"

    bad = {"prompt": [{"role": "user", "content": "unrenderable"}], "chosen": [{"role": "assistant", "content": "a"}],
           "rejected": [{"role": "assistant", "content": "b"}]}
    with pytest.raises(DataFormatError, match=r"train, row 2, field 'prompt': the chat template cannot render.*alternate"):
        load_pairs([chat_pair(), bad], file="train", render=render)


def test_plain_and_chat_pairs_are_not_mixed():
    with pytest.raises(DataFormatError, match="row 2: plain pair"):
        load_pairs([chat_pair(), {"prompt": "Hi", "chosen": "a", "rejected": "b"}])
    assert load_pairs([{"prompt": "Hi", "chosen": "a", "rejected": "b"}]) == [{"prompt": "Hi", "chosen": "a",
                                                                               "rejected": "b"}]


def test_the_course_pairs_prefer_the_right_concise_answer(greet_data):
    train, _ = greet_data
    pairs = pairs_from_rows(train[:6])
    for row, pair in zip(train[:6], pairs, strict=True):
        answer = row["messages"][-1]["content"]
        assert pair["prompt"] == row["messages"][:-1] and pair["chosen"][0]["content"] == answer
    assert pairs[0]["rejected"][0]["content"] == repeated(train[0]["messages"][-1]["content"])  # seed 002's failure
    wrong = pairs[1]["rejected"][0]["content"]
    assert wrong != train[1]["messages"][-1]["content"] and wrong in {r["messages"][-1]["content"] for r in train[:6]}
    assert load_pairs(pairs) == pairs  # they pass the checks as they are
    plain = pairs_from_rows(train[:2], kinds="wrong", plain=True)
    assert isinstance(plain[0]["prompt"], str) and plain[0]["chosen"] != plain[0]["rejected"]
    with pytest.raises(ValueError, match="kinds"):
        pairs_from_rows(train, kinds=["shorter"])


@pytest.mark.parametrize("name", ["trl_ultrafeedback_binarized.jsonl", "h4_ultrafeedback_binarized.jsonl"])
def test_public_sets_schemas_load_as_chat_pairs(name):
    pairs = load_pairs(FIXTURES / name)
    rows = [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]
    assert len(pairs) == len(rows)
    for pair, row in zip(pairs, rows, strict=True):
        assert pair["prompt"] == row["chosen"][:-1]  # the user's turn, once
        assert pair["chosen"] == row["chosen"][-1:] and pair["rejected"] == row["rejected"][-1:]


def test_a_hub_set_offline_is_refused_at_once_with_what_to_use_instead():
    from ftlab.machine import HubUnavailableError

    with pytest.raises(HubUnavailableError, match="trl-lib/ultrafeedback_binarized.*not reachable"):
        load_pairs("trl-lib/ultrafeedback_binarized")


# ------------------------------------------------------------------------------------------ plan
def test_the_plan_counts_two_sequences_a_pair_and_the_reference_without_a_second_model():
    from ftlab.memory.estimate import plan
    from ftlab.memory.shapes import model_shape

    shape = model_shape("TinyLlama/TinyLlama-1.1B-Chat-v1.0")
    sft, dpo = (plan(shape, batch_size=4, max_length=512, preference=p) for p in (False, True))
    assert dpo.tokens_per_step == 2 * sft.tokens_per_step
    assert dpo.term("weights").bytes == sft.term("weights").bytes  # one copy of the base
    n_lora = shape.lora_params(16, ["q_proj", "k_proj", "v_proj", "o_proj"])
    assert dpo.term("reference adapter").bytes == 4 * n_lora
    assert dpo.term("activations").bytes > 1.9 * sft.term("activations").bytes
    assert 0 < dpo.term("reference forward").bytes < dpo.term("activations").bytes
    assert any("no second model" in note for note in dpo.notes)


# ------------------------------------------------------------------------------------------ by hand vs TRL
def test_the_dpo_loss_by_hand_equals_trls_on_the_same_batch(tiny, greet_data, tmp_path):
    """A few DPO steps move the policy from its reference; then TRL's loss on one batch, and ten lines of torch on
    the same token ids (policy: the trained adapter; reference: TRL's frozen 'ref' copy), agree."""
    import torch
    from datasets import Dataset
    from peft import get_peft_model
    from trl import DPOTrainer

    from ftlab.course.by_hand.dpo import dpo_loss, sequence_logps
    from ftlab.evaluation.preference import reference_of

    model, tokenizer = tiny
    torch.manual_seed(0)
    tuned = get_peft_model(model, RoundConfig.preset("cpu-tiny").lora_config())
    config = PreferenceConfig(beta=0.3, learning_rate=5e-3, max_steps=3, batch_size=4, max_length=64,
                              logging_steps=1)
    pairs = pairs_from_rows(greet_data[0][:12])
    trainer = DPOTrainer(model=tuned, args=config.dpo_config(str(tmp_path), "fp32", False, False, "adamw_torch"),
                         train_dataset=Dataset.from_list(pairs), processing_class=tokenizer)
    trainer.train()
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    trainer.model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, batch).item()
        ids, mask = batch["input_ids"], batch["completion_mask"]
        policy = sequence_logps(trainer.model(input_ids=ids, attention_mask=batch["attention_mask"]).logits, ids, mask)
        _, switch = reference_of(trainer.model)
        with switch():
            ref = sequence_logps(trainer.model(input_ids=ids, attention_mask=batch["attention_mask"]).logits, ids, mask)
    loss, margin = dpo_loss(*policy.chunk(2), *ref.chunk(2), beta=0.3)
    assert margin.abs().max() > 1e-3  # the policy has moved: the check is not log 2 against log 2
    assert loss.item() == pytest.approx(trl_loss, abs=1e-4)


# ------------------------------------------------------------------------------------------ in the lab
@pytest.fixture(scope="module")
def lab_with_sft(tmp_path_factory, greet_data):
    """An SFT round on the tiny model, recorded with its held-out preference figures (a few seconds)."""
    import ftlab
    from ftlab.evaluation.preference import scorer

    model, tokenizer = ftlab.tiny_model()
    train, evaluation = greet_data
    held_out = pairs_from_rows(evaluation, seed=1)
    lab = ftlab.Lab(tmp_path_factory.mktemp("lab"))
    lab.train(RoundConfig.preset("cpu-tiny", max_steps=30, eval_steps=None), model, tokenizer, train[:64], evaluation,
              name="sft", samples=0, score=scorer(held_out, generate=2, max_new_tokens=16))
    return lab, model, tokenizer, pairs_from_rows(train[:64]), held_out


def test_a_preference_round_is_recorded_beside_its_sft_round(lab_with_sft):
    lab, model, tokenizer, pairs, held_out = lab_with_sft
    config = PreferenceConfig.preset("cpu-tiny", max_steps=8)
    round_ = lab.prefer(config, 1, pairs, held_out, model=model, tokenizer=tokenizer, name="dpo")
    assert round_.status == "succeeded", round_.verdict()
    assert round_.record["kind"] == "preference" and round_.record["parent"] == 1
    assert round_.record["preference"]["beta"] == config.beta
    assert round_.metrics["perplexity"] is None  # a DPO loss has no perplexity
    assert math.isclose(round_.metrics["eval_loss_before"], math.log(2), abs_tol=1e-4)  # policy = reference at start
    assert (round_.adapter_dir / "adapter_config.json").exists() and not (round_.adapter_dir / "ref").exists()
    table = lab.table()
    assert list(table["kind"]) == ["sft", f"dpo, beta {config.beta}"] and table.loc[round_.id, "parent"] == 1
    for score in ("preference_accuracy", "reward_margin", "repeated_3grams"):
        assert table[score].notna().all(), score  # both rounds measured on the same held-out pairs
    comparison = lab.compare([1, round_.id])
    assert not comparison.warnings and "kind" in comparison.table.columns
    assert "eval loss" not in comparison.best  # an SFT loss and a DPO loss are not ranked together
    with pytest.raises(ValueError, match="preference round"):
        lab.rerun(round_.id)
    exercise_08_passes_with_the_round_and_refuses_its_printed_mean(round_, held_out)


def exercise_08_passes_with_the_round_and_refuses_its_printed_mean(round_, held_out):
    from ftlab.course import checks
    from ftlab.course.by_hand.dpo import dpo_loss
    from ftlab.evaluation.preference import pair_logps, reference_of

    assert checks.check_dpo_loss(lambda *tensors: dpo_loss(*tensors)[0])
    policy = pair_logps(round_.model, round_.inputs.tokenizer, held_out)
    _, use_reference = reference_of(round_.model)
    with use_reference():
        ref = pair_logps(round_.model, round_.inputs.tokenizer, held_out)
    beta = round_.record["preference"]["beta"]
    assert checks.check_reward_margins(round_, beta * ((policy[0] - ref[0]) - (policy[1] - ref[1])))
    with pytest.raises(checks.CheckFailed, match="one number") as refused:
        checks.check_reward_margins(round_, round(round_.metrics["reward_margin"], 4))
    assert f"{round_.metrics['reward_margin']:.3f}" not in str(refused.value)


def test_an_adapter_from_another_base_is_refused_by_name(lab_with_sft, tiny):
    from ftlab.round.preference import AdapterMismatchError, check_adapter_base

    lab, _, _, pairs, held_out = lab_with_sft
    other, tokenizer = tiny
    other.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    before = len(lab.rounds())
    with pytest.raises(AdapterMismatchError, match="trained on 'tiny'.*'HuggingFaceTB/SmolLM2-135M-Instruct'"):
        lab.prefer(PreferenceConfig.preset("cpu-tiny"), 1, pairs, held_out, model=other, tokenizer=tokenizer)
    assert len(lab.rounds()) == before  # refused before a round was opened
    check_adapter_base(lab.round(1).adapter_dir, lab_with_sft[1])  # its own base passes


def test_a_collapse_of_the_chosen_answers_is_stopped_and_classified(lab_with_sft):
    lab, model, tokenizer, pairs, held_out = lab_with_sft
    config = PreferenceConfig.preset("cpu-tiny", learning_rate=0.5, max_steps=30, collapse_nats=3, logging_steps=1)
    round_ = lab.prefer(config, 1, pairs, held_out, model=model, tokenizer=tokenizer, name="huge lr")
    assert round_.status == "collapsed", round_.verdict()
    assert round_.failure["kind"] == "preference collapse" and round_.record["stopped_at_step"] < 30
    assert "Lower the learning rate" in round_.failure["advice"] and "beta" in round_.failure["advice"]


def test_held_out_measures_follow_the_pairs(lab_with_sft):
    """Preference accuracy counts chosen above rejected: swapping every pair's answers turns it into its complement
    and the reward margin into its negative; a model without an adapter has no reference, so no rewards."""
    from ftlab.evaluation.preference import measure, pair_logps

    lab, model, tokenizer, _, held_out = lab_with_sft
    from ftlab.export.adapter import load_adapter

    tuned, _ = load_adapter(lab.round(1).adapter_dir)
    swapped = [{**p, "chosen": p["rejected"], "rejected": p["chosen"]} for p in held_out]
    ahead, behind = (measure(tuned, tokenizer, s, beta=0.2, generate=0) for s in (held_out, swapped))
    chosen, rejected = pair_logps(tuned, tokenizer, held_out)
    assert ahead.preference_accuracy == pytest.approx(float((chosen > rejected).float().mean()))
    assert behind.preference_accuracy == pytest.approx(1 - ahead.preference_accuracy)
    assert behind.reward_margin == pytest.approx(-ahead.reward_margin, abs=1e-4)
    assert ahead.reference == "adapter disabled"
    base = measure(model, tokenizer, held_out, generate=1, max_new_tokens=8)
    assert base.reward_margin is None and base.reference is None and 0 <= base.repeated_3grams <= 1
