"""The answer checks: what is checked before the model runs and after it, each check named
(`rag.config.CHECKS`), with a switch, its thresholds in the settings and a stable code for the
abstentions it causes.

- `profiles`: which checks run and how (`Policy`, `policy`): the `small`, `capable` and `off`
  profiles;
- `gate`: before generation, whether the retrieved passages can answer (`retrieval_gate`);
- `answer`: after generation, the checks in order (`check_answer`), each a small function of
  one `Draft`; `verdict`: what they make of it and the abstain codes;
- one module per family of checks: `output` (echo, length, repeats, refusal), `figures`
  (figures, quantity), `made_up_names` (names), `ground` (citations), `claims` and `subjects`
  (claims), `relevance` (a terse span read in its passage sentence);
- `names`: what counts as a name, for every check that looks for one;
- `readback`: the model's output read back into a checked `Answer`.

This file imports none of them: `rag.extract` uses `ground` while `readback` uses `extract`, so
loading them all with the package would make importing `rag.checks.ground` need `rag.extract`
half-way through its own import. Import from the modules.
"""
