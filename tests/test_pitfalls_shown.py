"""The pitfall demonstrations of chapters 03, 06 and 07 strike as the chapters say, and ftlab's guard holds."""

import inspect

import ftlab.lab.widgets
from ftlab.course import pitfalls_shown
from ftlab.templates.template import Template


def test_mismatched_template_is_another_format_than_the_models_own(tiny):
    _, tokenizer = tiny
    wrong, own = pitfalls_shown.mismatched_template(tokenizer), Template.chat(tokenizer)
    turns = [{"role": "user", "content": "Hello, I am Zoe."}]
    assert wrong.prompt(turns) != own.prompt(turns)
    assert "Zoe" in wrong.prompt(turns)


def test_pip_without_an_index_fails_with_pips_own_error():
    error = pitfalls_shown.pip_without_internet("ftlab")
    assert "No matching distribution found for ftlab" in error
    assert "Connection refused" in error or "Failed to establish" in error


def test_the_wheels_route_installs_from_a_folder_and_names_a_missing_wheel(tmp_path):
    assert "Would install ftlab_wheels_demo-1.0 ftlab_wheels_dependency-1.0" in pitfalls_shown.pip_from_wheels(tmp_path)
    missing = pitfalls_shown.pip_from_wheels(tmp_path, with_dependency_wheel=False)
    assert "No matching distribution found for ftlab_wheels_dependency" in missing
    assert str(tmp_path) not in missing


def test_ftlabs_widgets_run_on_ipywidgets_7_and_the_check_finds_8_only_code():
    assert pitfalls_shown.ipywidgets8_only(inspect.getsource(ftlab.lab.widgets)) == {}
    found = pitfalls_shown.ipywidgets8_only("tabs = w.Tab(pages, titles=['a'])\nstack = w.Stack(pages)\n")
    assert set(found) == {"titles=", "Stack"}


def test_evaluate_load_fails_offline_with_the_message_a_learner_meets():
    error = pitfalls_shown.evaluate_load_offline("rouge")
    assert "rouge" in error and ("FileNotFoundError" in error or "not installed" in error)
