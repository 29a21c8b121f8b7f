"""The sandbox: run untrusted code (model-written patches and their tests) in a scratch copy
of a project, never the user's checkout, and say what happened (test_pass, test_fail, ...).

It knows nothing of models or run folders, so `validate`, `bugs check`, `bugs mine`,
`evaluate --bugs/--humaneval/--questions` and bench/validate.py use it alike:

- box.py: `Sandbox` and its `Limits` (namespaces, rlimits, wall clock, scrubbed environment),
  through `_jail.py`, which isolates the child process itself;
- manifest.py: bug manifests (`Bug`), exporting a project at a commit, applying a candidate;
- validate.py: `Validator`, a candidate's build and tests in the sandbox -> `Outcome`;
- importpath.py: making a scratch copy's tests import that copy (src/ layouts).
"""

from repotune.sandbox.box import Limits, RunResult, Sandbox, copy_tree, describe, isolation

__all__ = ["Limits", "RunResult", "Sandbox", "copy_tree", "describe", "isolation"]
