"""Quiet notebooks: other libraries' bars off inside ftlab's calls (the user's setting kept), warnings in one
line and once, and a round's progress shown as one output holding the losses the chapters explain."""

import warnings

import pytest

from ftlab.console.lines import warn
from ftlab.console.quiet import quiet_libraries
from ftlab.round.progress import RoundProgress


@pytest.mark.parametrize("users_choice", [True, False])
def test_datasets_bars_are_off_inside_and_the_users_setting_comes_back(users_choice):
    import datasets

    (datasets.enable_progress_bars if users_choice else datasets.disable_progress_bars)()
    try:
        with quiet_libraries():
            assert not datasets.is_progress_bar_enabled()
        assert datasets.is_progress_bar_enabled() is users_choice
        with pytest.raises(RuntimeError), quiet_libraries():
            raise RuntimeError("a failing block restores it too")
        assert datasets.is_progress_bar_enabled() is users_choice
    finally:
        datasets.enable_progress_bars()


def test_a_round_draws_no_datasets_bar_and_leaves_the_setting_as_it_was(tiny, greet_data, tmp_path, capfd):
    import datasets

    import ftlab

    datasets.enable_progress_bars()
    model, tokenizer = tiny
    config = ftlab.RoundConfig.preset("cpu-tiny", max_steps=2, eval_steps=2, logging_steps=1)
    ftlab.train_round(config, model, tokenizer, *greet_data, output_dir=str(tmp_path))
    err = capfd.readouterr().err
    assert "examples/s" not in err and "chat template" not in err and "Truncating" not in err, err[-2000:]
    assert datasets.is_progress_bar_enabled()


def test_warn_is_a_warning_shown_as_one_line():
    import subprocess
    import sys

    class Custom(UserWarning):
        pass

    with pytest.warns(Custom, match="rounds differ"):  # filters and pytest.warns see it as any warning
        warn("rounds differ", Custom)
    assert warnings.formatwarning.__name__ == "formatwarning"  # the usual formatter is back
    # shown as Python shows warnings outside pytest (a notebook's stderr): no file, line number or source line
    script = ("import warnings\nfrom ftlab.console.lines import warn\ndef compare():\n    warn('rounds differ')\n"
              "for _ in range(2):\n    compare()\nwarnings.warn('plain')\n")
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stderr
    assert shown.startswith("⚠ rounds differ\n") and shown.count("rounds differ") == 1  # once per calling line
    assert "UserWarning: plain" in shown  # other warnings keep Python's format


class _State:
    def __init__(self, step, max_steps=60):
        self.global_step, self.max_steps = step, max_steps


def test_round_progress_keeps_the_losses_and_drops_trls_extra_columns(monkeypatch):
    shown = []
    progress = RoundProgress()
    monkeypatch.setattr(progress, "_show", lambda text, force=False: shown.append(text))
    progress.on_log(None, _State(0), None, logs={"eval_loss": 4.8838, "eval_entropy": 1.86})  # before training
    progress.on_train_begin(None, _State(0), None)
    for step in range(1, 61):
        progress.on_log(None, _State(step), None, logs={"loss": 5 / step, "entropy": 0.9, "mean_token_accuracy": 0.5})
        if step % 20 == 0:
            progress.on_log(None, _State(step), None, logs={"eval_loss": 4 / step, "eval_mean_token_accuracy": 1.0})
    progress.on_train_end(None, _State(60), None)
    final = shown[-1].splitlines()
    assert final[0].startswith("60 steps in")
    assert final[1].split() == ["step", "train", "loss", "eval", "loss"]
    assert [line.split() for line in final[2:]] == [["0", "-", "4.8838"], ["20", "0.2500", "0.2000"],
                                                  ["40", "0.1250", "0.1000"], ["60", "0.0833", "0.0667"]]
    assert not any(word in "\n".join(shown) for word in ("entropy", "accuracy"))


def test_a_rows_train_loss_is_one_logged_since_the_previous_row_never_a_repeated_old_one(monkeypatch):
    shown = []
    progress = RoundProgress()
    monkeypatch.setattr(progress, "_show", lambda text, force=False: shown.append(text))
    progress.on_train_begin(None, _State(0, 18), None)
    for step in range(1, 19):  # train loss logged at steps 1 and 10, evaluations every 6 steps
        if step in (1, 10):
            progress.on_log(None, _State(step, 18), None, logs={"loss": 1 / step})
        if step % 6 == 0:
            progress.on_log(None, _State(step, 18), None, logs={"eval_loss": 0.5})
    progress.on_train_end(None, _State(18, 18), None)
    assert [line.split()[:2] for line in shown[-1].splitlines()[2:]] == [["6", "1.0000"], ["12", "0.1000"], ["18", "-"]]
    progress.rows = [(step, 0.25, 0.5) for step in range(0, 100, 5)]  # 20 evaluations, the table keeps 8 of them
    progress.logged_steps = [3, 13]  # logged between rows the table leaves out: shown on the next row it keeps
    kept = [line.split()[:2] for line in progress.final(95).splitlines()[2:]]
    assert kept[:3] == [["0", "-"], ["15", "0.2500"], ["30", "-"]], kept


def test_a_long_table_keeps_its_ends():
    progress = RoundProgress()
    progress.rows = [(step, 1.0, 1.0) for step in range(0, 100, 5)]  # 20 evaluations
    lines = progress.final(95).splitlines()[2:]
    assert len(lines) <= 9 and lines[0].split()[0] == "0" and lines[-1].split()[0] == "95"


def test_transformers_logs_are_off_inside_and_the_users_verbosity_comes_back():
    from transformers.utils import logging

    before = logging.get_verbosity()
    logging.set_verbosity_info()
    try:
        with quiet_libraries(datasets_bars=False, transformers_logs=True):
            assert logging.get_verbosity() == logging.ERROR
        assert logging.get_verbosity() == logging.INFO
    finally:
        logging.set_verbosity(before)


def test_the_known_checkpoint_line_is_silenced_inside_and_other_lines_pass(tmp_path):
    import logging
    import os

    from transformers.trainer_utils import sort_checkpoints

    from ftlab.console.quiet import known_lines_off

    for step in (10, 20):  # written in the same second, as a fast round writes them
        (tmp_path / f"checkpoint-{step}").mkdir()
        os.utime(tmp_path / f"checkpoint-{step}", (1e9, 1e9))
    logger = logging.getLogger("transformers.trainer_utils")
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    filters, level = list(logger.filters), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        with known_lines_off():
            logging.Logger.warning_once.cache_clear()  # transformers says it once per process
            sort_checkpoints(str(tmp_path), use_mtime=True)
            logger.warning("another warning")
        assert seen == ["another warning"]  # the known line is gone, any other still passes
        assert logger.filters == filters  # nothing of ftlab's left on the logger
        logging.Logger.warning_once.cache_clear()
        sort_checkpoints(str(tmp_path), use_mtime=True)  # outside ftlab's calls the line is the user's to see
        assert len(seen) == 2 and seen[1].startswith("mtime may not be reliable"), seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logging.Logger.warning_once.cache_clear()


def test_only_small_local_models_load_without_a_bar(tmp_path):
    from ftlab.models.loading import _loads_in_a_blink

    assert not _loads_in_a_blink("TinyLlama/TinyLlama-1.1B-Chat-v1.0")  # a download: keep its bar
    assert not _loads_in_a_blink(str(tmp_path))  # no weights here to judge by
    (tmp_path / "model.safetensors").write_bytes(b"0" * 1000)
    assert _loads_in_a_blink(str(tmp_path))


def test_a_malformed_log_call_inside_the_block_does_not_stop_a_round_and_the_filter_goes_on_an_error(capsys):
    import logging

    from ftlab.console.quiet import known_lines_off

    logger = logging.getLogger("transformers.trainer_utils")
    filters, level, propagate = list(logger.filters), logger.level, logger.propagate
    handler = logging.StreamHandler()  # logging's own handling (pytest's capture handler would raise instead)
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        with pytest.raises(RuntimeError, match="a failing round"), known_lines_off():
            logger.warning("arguments that do not fit %s %s", 1)  # logging reports it on stderr, nothing raised
            raise RuntimeError("a failing round")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
    assert logger.filters == filters and "Logging error" in capsys.readouterr().err
