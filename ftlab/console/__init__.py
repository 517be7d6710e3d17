"""What ftlab prints: progress that a slow step shows, warnings in one line, and other libraries' noise off.

- ``lines``: one line rewritten in place (a notebook output, a terminal line), ``Progress`` and ``track`` for
  ftlab's own loops, ``warn`` for one-line warnings.
- ``quiet``: other libraries' progress bars, log lines and login prompts off inside ftlab's calls.

Standard library only at import: every module may use it.
"""
