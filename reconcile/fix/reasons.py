"""Why the plan chose an action: a stable code with its parameters, and its sentence in a language.

Each reason code has a message `plan.reason.<code>` in the catalog (reconcile/data/messages.yaml), in
Vietnamese and English. The English sentence is what a plan file's `reason` holds for its human reader;
`reason_code` and `reason_args` sit beside it, so tickets can show the reason in another language.
Parameters are plain values (text, numbers, lists of codes); coded ones also get a `<name>_label` in
the language (statuses and outcomes: value.*, finding kinds: kind.*), for the templates that want it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from reconcile.util.i18n import catalog, t

CODES = ("closed_on_paper", "reassign_inactive_assignee", "no_rule_or_default", "no_migration_target",
         "target_invalid", "target_without_staff", "step_lost_by_rule", "step_lost_by_diff", "superseded_by_rule",
         "missing_in_system", "backfill_unknown_procedure", "backfill_ambiguous_procedure")
LABELS = {"outcome": "value", "status": "value", "findings": "kind"}  # parameter -> catalog prefix of its codes


def reason(code: str, **args: Any) -> dict[str, Any]:
    """An action's reason fields: the English sentence, the code and its parameters."""
    types = tuple(map(type, args.values()))  # 1 and True are equal: the types tell them apart
    try:
        sentence = _english(code, tuple(args.items()), types)
    except TypeError:  # a list among them (unhashable): as a tuple
        sentence = _english(code, tuple((k, tuple(v) if type(v) is list else v) for k, v in args.items()), types)
    return {"reason": sentence, "reason_code": code, "reason_args": args}


@lru_cache(maxsize=4096)
def _english(code: str, items: tuple[tuple[str, Any], ...], types: tuple[type, ...]) -> str:
    """The English sentence, once per distinct reason (a plan repeats a few of them many times)."""
    return render(code, {k: list(v) if t is list else v for (k, v), t in zip(items, types)}, "en")


def render(code: str, args: dict[str, Any], lang: str) -> str:
    """The sentence of reason `code` with `args` in `lang` (KeyError for a code or parameter it lacks)."""
    params = {k: ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in args.items()}
    for name, prefix in LABELS.items():
        if name in args:
            codes = args[name] if isinstance(args[name], list) else [args[name]]
            params[f"{name}_label"] = ", ".join(catalog().get(f"{prefix}.{c}", {}).get(lang, str(c)) for c in codes)
    if "file" in args:  # where on the register
        params["where"] = t("plan.where.sheet_row" if args.get("sheet") else "plan.where.row", lang, **args)
    return t(f"plan.reason.{code}", lang, **params)


def text(sentence: str, code: str | None, args: dict[str, Any] | None, lang: str) -> str:
    """An action's reason in `lang`. The English `sentence` as it is in English, and when there is no code (a
    plan file of an older version), the code is unknown, or the sentence is not the code's (a reviewer edited it)."""
    if lang == "en" or code not in CODES or not isinstance(args, dict):
        return sentence
    try:
        if " ".join(render(code, args, "en").split()) != " ".join(sentence.split()):
            return sentence
        return render(code, args, lang)
    except (KeyError, IndexError, ValueError):  # parameters that do not fit the code's message
        return sentence

