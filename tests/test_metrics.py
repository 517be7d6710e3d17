"""Tests for ftlab.evaluation.metrics: agreement with sacrebleu / rouge-score on English, and the CJK and
accent cases where those libraries, used naively, score correct answers as zero."""

import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from ftlab.evaluation import metrics

EN_PREDICTIONS = [
    "the cat sat on the mat",
    "a quick brown fox jumps over the lazy dog",
    "The base model stays frozen.\nLoRA adds small trainable matrices.",
]
EN_REFERENCES = [
    "the cat is sitting on the mat",
    "the quick brown fox jumped over the lazy dog",
    "LoRA trains two small matrices.\nThe base weights stay frozen.",
]
ZH_REFERENCE = "今天天气很好，我们去公园散步吧"
ZH_NEAR = "今天天气不错，我们去公园散步吧"  # two characters changed
ROUGE_KEYS = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


# --- BLEU ---------------------------------------------------------------------------------------------


def test_bleu_equals_sacrebleu_on_english():
    expected = sacrebleu.corpus_bleu(EN_PREDICTIONS, [EN_REFERENCES]).score
    assert 0 < expected < 100  # the fixture must not be trivial
    assert metrics.bleu(EN_PREDICTIONS, EN_REFERENCES) == pytest.approx(expected / 100)  # ftlab's 0-1 scale


def test_bleu_on_chinese_identical_is_1_and_near_identical_in_between():
    assert metrics.bleu([ZH_REFERENCE], [ZH_REFERENCE]) == pytest.approx(1)
    near = metrics.bleu([ZH_NEAR], [ZH_REFERENCE])
    assert 0 < near < 1
    # the pitfall being prevented: sacrebleu's default 13a tokenizer sees one "word" and scores 0
    assert sacrebleu.corpus_bleu([ZH_NEAR], [[ZH_REFERENCE]]).score == 0.0
    assert near == pytest.approx(sacrebleu.corpus_bleu([ZH_NEAR], [[ZH_REFERENCE]], tokenize="zh").score / 100)


def test_bleu_on_japanese_uses_characters():
    text = "今日はとても良い天気ですね"
    assert metrics.bleu([text], [text]) == pytest.approx(1)


def test_bleu_explicit_lang_overrides_detection():
    # lang="en" forces 13a even on Chinese text, which is exactly the zero a learner should avoid
    assert metrics.bleu([ZH_REFERENCE], [ZH_REFERENCE], lang="en") == 0.0
    assert metrics.bleu([ZH_REFERENCE], [ZH_REFERENCE], lang="zh-CN") == pytest.approx(1)


# --- ROUGE --------------------------------------------------------------------------------------------


def test_rouge_equals_rouge_score_on_english():
    scorer = rouge_scorer.RougeScorer(ROUGE_KEYS, use_stemmer=False)
    pair_scores = [scorer.score(r, p) for p, r in zip(EN_PREDICTIONS, EN_REFERENCES, strict=True)]
    result = metrics.rouge(EN_PREDICTIONS, EN_REFERENCES)
    assert sorted(result) == sorted(ROUGE_KEYS)
    for key in ROUGE_KEYS:
        expected = sum(s[key].fmeasure for s in pair_scores) / len(pair_scores)
        assert 0 < expected < 1
        assert result[key] == pytest.approx(expected)
    # the third pair has its two sentences swapped: rougeL (one LCS over all) is hurt by that,
    # rougeLsum (LCS per line) is not, which shows the newline split is used
    assert pair_scores[2]["rougeLsum"].fmeasure > pair_scores[2]["rougeL"].fmeasure
    assert result["rougeLsum"] > result["rougeL"]


def test_rouge_on_chinese_identical_is_1_and_near_identical_in_between():
    # rouge-score's default tokenizer drops every Chinese character: identical strings would score 0
    assert rouge_scorer.RougeScorer(["rouge1"]).score(ZH_REFERENCE, ZH_REFERENCE)["rouge1"].fmeasure == 0.0
    assert metrics.rouge([ZH_REFERENCE], [ZH_REFERENCE]) == {key: pytest.approx(1.0) for key in ROUGE_KEYS}
    near = metrics.rouge([ZH_NEAR], [ZH_REFERENCE])
    for key in ROUGE_KEYS:
        assert 0 < near[key] < 1
    # per character: 12 of the 14 tokens on each side are shared (the comma is not a token)
    assert near["rouge1"] == pytest.approx(12 / 14)
    # Latin words inside Chinese stay whole words (lowercased); spacing around them does not matter
    assert metrics.rouge(["用 LoRA 训练"], ["用lora训练"])["rouge2"] == pytest.approx(1.0)
    assert metrics.rouge(["用 LoRA 训练"], ["用 L o R A 训练"])["rouge1"] < 1.0


def test_rouge_keeps_accented_words():
    # the default tokenizer turns "café" into "caf" and would call these a perfect match
    assert rouge_scorer.RougeScorer(["rouge1"]).score("caf", "café")["rouge1"].fmeasure == 1.0
    assert metrics.rouge(["café"], ["caf"])["rouge1"] == 0.0
    assert metrics.rouge(["café crème"], ["café noir"])["rouge1"] == pytest.approx(0.5)


# --- exact match and F1 -------------------------------------------------------------------------------

QA_PREDICTIONS = ["The Eiffel Tower!", "in Paris, France", "1889"]
QA_REFERENCES = ["eiffel tower", "Paris", "1887"]


def test_exact_match_and_f1_hand_computed():
    # EM: "The Eiffel Tower!" -> "eiffel tower" matches; the other two do not -> 1/3.
    assert metrics.exact_match(QA_PREDICTIONS, QA_REFERENCES) == pytest.approx(1 / 3)
    # F1 per pair: 1.0; [in, paris, france] vs [paris]: P=1/3, R=1, F1=2*(1/3)/(4/3)=0.5; 0.0.
    # Mean: (1.0 + 0.5 + 0.0) / 3 = 0.5.
    assert metrics.f1(QA_PREDICTIONS, QA_REFERENCES) == pytest.approx(0.5)


def test_f1_and_exact_match_on_chinese():
    # "北京是首都" vs "北京": per character 2 shared of 5 predicted and 2 expected:
    # P=2/5, R=1, F1 = 2*0.4*1/1.4 = 4/7. Whitespace tokens would make it 0.
    assert metrics.f1(["北京是首都"], ["北京"]) == pytest.approx(4 / 7)
    # the Chinese full stop is punctuation, so it is stripped like "." would be
    assert metrics.exact_match(["北京。"], ["北京"]) == 1.0


# --- numbers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 1,234.5", 1234.5),
        ("-3", -3.0),
        ("3/4", 0.75),
        ("答案是12.5", 12.5),
        ("x = 7.", 7.0),
        ("25%", 25.0),
        ("答案是１２", 12.0),
        ("First 3 apples, then 5, so 8 in total", 8.0),
        ("from 3-4 hours", 4.0),  # a dash between numbers is a range, not a minus sign
    ],
)
def test_extract_number(text, expected):
    assert metrics.extract_number(text) == pytest.approx(expected)


def test_extract_number_none_without_a_number():
    assert metrics.extract_number("no number here") is None


def test_answer_accuracy_with_tolerance():
    predictions = ["The answer is 12.55", "12.56", "I don't know", "答案是 -3"]
    references = ["12.5", "12.5", "7", "#### -3"]
    # default 0.05: 12.55 in (its float difference is 0.0500000000000007), 12.56 out, no number out, -3 in
    assert metrics.answer_accuracy(predictions, references) == pytest.approx(2 / 4)
    assert metrics.answer_accuracy(predictions, references, tolerance=0.1) == pytest.approx(3 / 4)
    assert metrics.answer_accuracy(predictions, references, tolerance=0) == pytest.approx(1 / 4)


def test_answer_accuracy_rejects_reference_without_number():
    with pytest.raises(ValueError, match=r"references\[1\] has no number"):
        metrics.answer_accuracy(["1", "2"], ["1", "two"])


# --- input validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [
        (["a", "b", "c", None], ["a", "b", "c", "d"], r"predictions\[3\] is None, expected a string"),
        (["a", "b"], ["a", 2], r"references\[1\] is a int \(2\), expected a string"),
        (["a"], [["a", "b"]], r"references\[0\] is a list, expected a string"),
        (["a", "b"], ["a"], r"2 predictions but 1 references"),
        ("a cat", ["a cat"], r"predictions must be a list of strings, got a single str"),
        ([], [], r"nothing to score"),
    ],
)
@pytest.mark.parametrize("metric", [metrics.bleu, metrics.rouge, metrics.exact_match, metrics.f1])
def test_bad_inputs_raise_value_error(metric, predictions, references, message):
    with pytest.raises(ValueError, match=message):
        metric(predictions, references)


# --- evaluate-style access ----------------------------------------------------------------------------


def test_compute_uses_evaluate_key_names_and_scales():
    score = metrics.bleu(EN_PREDICTIONS, EN_REFERENCES)
    assert metrics.compute("sacrebleu", EN_PREDICTIONS, EN_REFERENCES)["score"] == pytest.approx(score * 100)
    assert metrics.compute("bleu", EN_PREDICTIONS, EN_REFERENCES)["bleu"] == pytest.approx(score)
    assert metrics.compute("rouge", EN_PREDICTIONS, EN_REFERENCES) == metrics.rouge(
        EN_PREDICTIONS, EN_REFERENCES
    )
    assert metrics.compute("squad", QA_PREDICTIONS, QA_REFERENCES) == {
        "exact_match": pytest.approx(100 / 3),
        "f1": pytest.approx(50.0),
    }
    assert metrics.compute("answer_accuracy", ["7"], ["7.1"], tolerance=0.2) == {"answer_accuracy": 1.0}
    with pytest.raises(ValueError, match="unknown metric 'meteor'"):
        metrics.compute("meteor", ["a"], ["a"])


def test_import_is_cheap():
    # sacrebleu and rouge-score (which pulls in nltk) load only when a metric is first computed
    # and torch never: model-based scores (perplexity) live in ftlab.evaluation.scoring
    code = ("import sys, ftlab.evaluation.metrics; ftlab.evaluation.metrics.score(['a b'], ['a b'], ('exact_match', 'f1')); "
            "print('sacrebleu' in sys.modules, 'rouge_score' in sys.modules, 'torch' in sys.modules)")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_one_table_one_scale():
    """Every ftlab score is a share from 0 to 1, perfect answers score 1 on each, and evaluation uses the same table."""
    from ftlab.evaluation import scoring as evaluation

    texts = ["Paris has 2 million people.", "Seven and five make 12."]
    perfect = metrics.score(texts, texts, names=tuple(metrics.SCORES))
    assert set(perfect) == {"exact_match", "f1", "rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "answer_accuracy"}
    assert all(value == pytest.approx(1.0) for value in perfect.values()), perfect
    wrong = metrics.score(texts, ["Berlin has 3 million people.", "It makes 9."], names=tuple(metrics.SCORES))
    assert all(0 <= value < 1 for value in wrong.values()), wrong
    assert evaluation.score(texts, texts) == metrics.score(texts, texts)
