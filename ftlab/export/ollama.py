"""An Ollama Modelfile for a GGUF file: FROM, the model's chat template in Ollama's Go syntax, its stop tokens.

``ollama create NAME -f model.Modelfile`` then ``ollama run NAME`` runs the model in the chat format it was
trained in. Without explicit ``stop`` parameters a GGUF model in Ollama may not stop at its end-of-turn token
and ramble on, so the Modelfile names each one (``PARAMETER stop``).

Ollama's templates are Go templates, not Jinja, so the model's chat template is translated by what it writes,
not by its source: it is rendered with marker contents for each role, and the text around each marker becomes
that role's prefix and suffix (``<|im_start|>user\\n`` ... ``<|im_end|>\\n``), plus what opens the answer (the
generation prompt). The translation is kept only if it renders four test conversations exactly as the Jinja
template does; a template that is not one wrapper per message (Llama 2's, which folds the system prompt into
the first user turn, or one that refuses a system turn) gets a Modelfile without TEMPLATE, which says so (Ollama
then reads the chat template inside the GGUF file). A default system prompt that a template adds to every
conversation (SmolLM2's) becomes the Modelfile's SYSTEM line, which Ollama sends whenever a chat has none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MARK = "# Ollama Modelfile written by ftlab"  # its first line: how write_gguf recognises its own Modelfile
KIND = "Ollama Modelfile"
ROLES = ("system", "user", "assistant")
# contents no template alters: private-use characters, no spaces to strip
MARKERS = {"system": "\ue000S\ue000", "user": "\ue000U\ue000", "assistant": "\ue000A\ue000",
           "user2": "\ue000V\ue000", "assistant2": "\ue000B\ue000", "user3": "\ue000W\ue000"}


class CannotTranslate(ValueError):
    """A chat template that is not one wrapper per message: Ollama's template cannot be derived from it."""


@dataclass(frozen=True)
class Wrappers:
    """Each role's text before and after its message, what opens the answer, and a default system prompt."""

    prefix: dict[str, str]
    suffix: dict[str, str]
    generation_prompt: str
    default_system: str | None

    def render(self, messages: list[dict]) -> str:
        """What the Go template renders for ``messages`` (Ollama puts a SYSTEM line's prompt first when none is given)."""
        if self.default_system is not None and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": self.default_system}, *messages]
        return "".join(self.prefix[m["role"]] + m["content"] + self.suffix[m["role"]] for m in messages) + \
            self.generation_prompt


def _split(text: str, markers: list[str]) -> list[str]:
    """``text`` cut at each marker, in order: the pieces between them (each marker exactly once)."""
    pieces = []
    for marker in markers:
        if text.count(marker) != 1:
            raise CannotTranslate(f"the template does not write each message's content once ({text!r})")
        before, text = text.split(marker)
        pieces.append(before)
    return [*pieces, text]


def _common_suffix(*texts: str) -> str:
    n = 0
    while all(len(t) > n for t in texts) and len({t[len(t) - n - 1] for t in texts}) == 1:
        n += 1
    return texts[0][len(texts[0]) - n:] if n else ""


def _common_prefix(*texts: str) -> str:
    n = 0
    while all(len(t) > n for t in texts) and len({t[n] for t in texts}) == 1:
        n += 1
    return texts[0][:n]


def wrappers(render, bos: str = "") -> Wrappers:
    """The per-role wrappers of the chat template that ``render(messages, add_generation_prompt)`` applies.

    ``bos``: the BOS text the template writes once before the first message (left out of the wrappers).
    Where the text between two messages could be cut in more than one place (``<|im_end|>\n<|im_start|>user\n``),
    the cut that gives each role the system turn's opening with its own name wins (``<|im_start|>user\n``).
    """
    m = MARKERS

    def text(roles):
        rendered = render([{"role": r.rstrip("23"), "content": m[r]} for r in roles], True)
        return rendered[len(bos):] if bos and rendered.startswith(bos) else rendered

    try:
        whole, alone = text(["system", "user", "assistant", "user2"]), text(["user"])
    except Exception as error:  # noqa: BLE001 - a template that raises on a system turn, or on these roles
        raise CannotTranslate(f"the template refuses a system, user, assistant, user conversation ({error})") from error
    system_prefix, system_then_user, user_then_assistant, assistant_then_user, user_then_answer = _split(
        whole, [m["system"], m["user"], m["assistant"], m["user2"]])
    lead, alone_then_answer = _split(alone, [m["user"]])
    if alone_then_answer != user_then_answer:
        raise CannotTranslate("a user message is not followed by the same text everywhere")
    named = {role: system_prefix.replace("system", role) for role in ("user", "assistant")} \
        if "system" in system_prefix else {}
    user_prefixes = [p for p in (named.get("user"), _common_suffix(lead, system_then_user, assistant_then_user))
                     if p is not None and all(t.endswith(p) for t in (lead, system_then_user, assistant_then_user))]
    assistant_prefixes = [p for p in (named.get("assistant"), "") if p is not None and user_then_assistant.endswith(p)]
    for user_prefix in dict.fromkeys(user_prefixes):
        for assistant_prefix in dict.fromkeys(assistant_prefixes):
            found = _wrappers(system_prefix, system_then_user, user_then_assistant, assistant_then_user,
                              user_then_answer, lead, user_prefix, assistant_prefix)
            if found is not None and all(found.render([{"role": r.rstrip("23"), "content": m[r]} for r in roles])
                                         == text(roles) for roles in TEST_CHATS):
                return found
    raise CannotTranslate("no wrapper per role reproduces the template's conversations (it is not one wrapper per "
                          "message)")


TEST_CHATS = (["user"], ["system", "user"], ["user", "assistant", "user2"],
              ["system", "user", "assistant", "user2", "assistant2", "user3"])


def _wrappers(system_prefix, system_then_user, user_then_assistant, assistant_then_user, user_then_answer, lead,
              user_prefix, assistant_prefix) -> Wrappers | None:
    """The wrappers when the user and assistant prefixes are these, or None when the texts do not fit them."""
    user_suffix = user_then_assistant[:len(user_then_assistant) - len(assistant_prefix)]
    if not user_then_answer.startswith(user_suffix):
        return None
    system_suffix = system_then_user[:len(system_then_user) - len(user_prefix)]
    extra, default_system = lead[:len(lead) - len(user_prefix)], None
    if extra:  # the template wrote a system turn of its own before a lone user message
        if not (extra.startswith(system_prefix) and extra.endswith(system_suffix)):
            return None
        default_system = extra[len(system_prefix):len(extra) - len(system_suffix)]
    return Wrappers(
        prefix={"system": system_prefix, "user": user_prefix, "assistant": assistant_prefix},
        suffix={"system": system_suffix, "user": user_suffix,
                "assistant": assistant_then_user[:len(assistant_then_user) - len(user_prefix)]},
        generation_prompt=user_then_answer[len(user_suffix):], default_system=default_system)


def _literal(text: str) -> str:
    """``text`` as it stands in a Go template inside a Modelfile's triple quotes."""
    if "{{" in text or '"""' in text or "}}" in text:
        return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"  # a Go string constant (JSON's escapes are Go's)
    return text


def go_template(found: Wrappers, bos: str = "") -> str:
    """Ollama's TEMPLATE for ``found``: ``bos``, every message wrapped by its role, then the generation prompt."""
    branches = "".join(
        f"{{{{ {'if' if i == 0 else 'else if'} eq .Role \"{role}\" }}}}"
        f"{_literal(found.prefix[role])}{{{{ .Content }}}}{_literal(found.suffix[role])}"
        for i, role in enumerate(ROLES))
    return f"{_literal(bos)}{{{{ range .Messages }}}}{branches}{{{{ end }}}}{{{{ end }}}}{_literal(found.generation_prompt)}"


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def modelfile(gguf_name: str, render, stops: list[str], bos: str = "", source: str = "") -> str:
    """The Modelfile text for the GGUF file ``gguf_name`` beside it (see the module's docstring)."""
    lines = [f"{MARK} for {gguf_name}{f' (from {source})' if source else ''}.",
             f"# ollama create my-model -f {gguf_name.rsplit('.', 1)[0]}.Modelfile && ollama run my-model",
             f"FROM ./{gguf_name}"]
    try:
        found = wrappers(render, bos)
    except CannotTranslate as why:
        lines.append(f"# No TEMPLATE: {why}; Ollama uses the chat template inside {gguf_name}.")
    else:
        lines.append(f'TEMPLATE """{go_template(found, bos)}"""')
        if found.default_system is not None:
            lines.append(f'SYSTEM """{found.default_system}"""' if '"""' not in found.default_system
                         else f"SYSTEM {_quoted(found.default_system)}")
    lines += [f"PARAMETER stop {_quoted(stop)}" for stop in stops]
    return "\n".join(lines) + "\n"
