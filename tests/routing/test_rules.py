"""Rules and roster validation: every refusal names file, line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ivr.routing import rules as rules_mod

ROOT = Path(__file__).resolve().parents[2]


def refuse(tmp_path, mk, rules=None, agents=None) -> str:
    rp = mk.write(tmp_path / "rules.yaml", rules or mk.BASE_RULES)
    ap = mk.write(tmp_path / "agents.yaml", agents or mk.BASE_AGENTS)
    with pytest.raises(rules_mod.RulesError) as exc:
        rules_mod.load(rp, ap)
    return str(exc.value)


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_shipped_rules_route_every_category_the_classifier_answers():
    r = rules_mod.load(ROOT / "routing/rules.yaml", ROOT / "routing/agents.yaml")
    wanted = {"account_security", "payment", "product_usage", "game_support", "technical_fault", "complaint",
              "human", "out_of_scope"}
    assert wanted <= set(r.rules.categories)
    assert r.category("human")[1].queue == r.category("out_of_scope")[1].queue == "general"
    complaint = r.rules.categories["complaint"]
    assert complaint.priority == max(c.priority for c in r.rules.categories.values()) and complaint.promise_s


def _model_fields(model, seen=None) -> set[str]:
    """Every key a typed rules/roster model accepts, nested models included."""
    import typing

    from pydantic import BaseModel

    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    out = set()
    for name, f in model.model_fields.items():
        out.add(f.alias or name)
        todo = [f.annotation]
        while todo:
            t = todo.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                out |= _model_fields(t, seen)
            todo.extend(typing.get_args(t))
    return out


@pytest.mark.parametrize("path,model", [("routing/rules.yaml", "RulesFile"), ("routing/agents.yaml", "RosterFile")])
def test_shipped_files_comment_every_field_for_ops(path, model):
    """Every key the parser accepts is explained in the shipped file: named in a comment, or
    its line carries a comment or follows one (derived from the models: a new field needs one)."""
    import re

    lines = (ROOT / path).read_text().splitlines()
    comments = "\n".join(line.split("#", 1)[1] for line in lines if "#" in line).lower()
    keys = _model_fields(getattr(rules_mod, model))
    assert {"strategy", "holidays", "closed_number", "after_max_wait", "address"} & keys
    for key in sorted(keys):
        if re.search(rf"\b{re.escape(key.lower())}\b", comments):
            continue
        at = next((i for i, line in enumerate(lines) if re.match(rf"\s*-?\s*{re.escape(key)}:", line)), None)
        assert at is not None and ("#" in lines[at] or lines[at - 1].lstrip().startswith("#")), \
            f"{path}: {key} has no comment for ops"


def test_unknown_queue_is_refused_with_file_and_line(tmp_path, mk):
    message = refuse(tmp_path, mk, rules=mk.rules_with(**{"categories.payment.queue": "biling"}))
    line = line_of(tmp_path / "rules.yaml", "queue: biling")
    assert f"rules.yaml:{line}: categories.payment.queue: unknown queue 'biling'" in message


def test_unknown_skill_in_the_roster_is_refused_in_the_roster_file(tmp_path, mk):
    agents = yaml.safe_load(yaml.safe_dump(mk.BASE_AGENTS))
    agents["agents"][1]["skills"] = {"paymnet": 2, "general": 1}
    message = refuse(tmp_path, mk, agents=agents)
    assert "agents.yaml:" in message and "agents[1].skills: unknown skill 'paymnet'" in message


def test_overflow_cycle_is_refused(tmp_path, mk):
    message = refuse(tmp_path, mk, rules=mk.rules_with(**{"queues.general.overflow": {"after_s": 10, "to": "billing"}}))
    assert "overflow cycle billing -> general -> billing" in message
    assert "rules.yaml:" in message


def test_category_nobody_on_the_roster_can_serve_is_refused(tmp_path, mk):
    agents = {"agents": [a for a in mk.BASE_AGENTS["agents"] if a["id"] != "cat"]}
    message = refuse(tmp_path, mk, agents=agents)
    assert "categories.account_security: nobody on the roster" in message


@pytest.mark.parametrize("weekly, reason", [
    ({"mon-fri": ["9-18"]}, "a time range like 09:00-18:00"),
    ({"mon-fri": ["18:00-09:00"]}, "the end must be after the start"),
    ({"monday": ["09:00-18:00"]}, "day names are mon"),
    ({"mon": ["09:00-25:00"]}, "hours 00-23"),
])
def test_malformed_hours_are_refused_with_the_reason(tmp_path, mk, weekly, reason):
    message = refuse(tmp_path, mk, rules=mk.rules_with(**{"hours.business.weekly": weekly}))
    assert "hours.business.weekly" in message and reason in message


def test_unknown_time_zone_is_refused(tmp_path, mk):
    message = refuse(tmp_path, mk, rules=mk.rules_with(**{"hours.business.timezone": "Asia/Soeul"}))
    line = line_of(tmp_path / "rules.yaml", "timezone: Asia/Soeul")
    assert f"rules.yaml:{line}: hours.business.timezone: expected an IANA time zone" in message
    assert "Asia/Soeul" in message


def test_unknown_hours_name_is_refused_with_file_and_line(tmp_path, mk):
    message = refuse(tmp_path, mk, rules=mk.rules_with(**{"queues.general.hours": "weekdays"}))
    line = line_of(tmp_path / "rules.yaml", "hours: weekdays")
    assert f"rules.yaml:{line}: queues.general.hours: unknown hours 'weekdays'" in message
    assert "define it under hours: (have business)" in message
    assert len(message.splitlines()) == 1  # refused for this reason alone


def test_unknown_skill_in_a_queue_is_refused_with_file_and_line(tmp_path, mk):
    message = refuse(tmp_path, mk, rules=mk.rules_with(**{"queues.security.skills": {"acount_security": 1}}))
    line = line_of(tmp_path / "rules.yaml", "acount_security: 1")
    assert f"rules.yaml:{line}: queues.security.skills: unknown skill 'acount_security'" in message
    assert "declare it under skills: (known: payment, account_security, complaints, general)" in message


def test_unknown_skill_in_a_category_is_refused_with_file_and_line(tmp_path, mk):
    message = refuse(tmp_path, mk, rules=mk.rules_with(**{"categories.payment.skills": {"paymnt": 1}}))
    line = line_of(tmp_path / "rules.yaml", "paymnt: 1")
    assert f"rules.yaml:{line}: categories.payment.skills: unknown skill 'paymnt'" in message
    assert "declare it under skills:" in message


def test_vip_numbers_must_be_e164_each_refused_at_its_line(tmp_path, mk):
    rules = mk.rules_with(**{"vip.numbers": ["+821099990000", "010-9999-0000", "+82 10 1234 5678"]})
    message = refuse(tmp_path, mk, rules=rules)
    for i, bad in ((1, "010-9999-0000"), (2, "+82 10 1234 5678")):
        line = line_of(tmp_path / "rules.yaml", bad)
        assert f"rules.yaml:{line}: vip.numbers[{i}]: expected an E.164 number like +821012345678" in message
        assert f"found {bad!r}" in message
    assert "vip.numbers[0]" not in message
    assert rules_mod.parse(yaml.safe_dump(mk.rules_with(**{"vip.numbers": ["+821099990000"]})),
                           yaml.safe_dump(mk.BASE_AGENTS)).vip_numbers == {"+821099990000"}


def test_the_after_hours_number_must_be_e164(tmp_path, mk):
    message = refuse(tmp_path, mk, rules=mk.rules_with(**{"hours.business.closed_number": "call us later"}))
    line = line_of(tmp_path / "rules.yaml", "call us later")
    assert f"rules.yaml:{line}: hours.business.closed_number: expected an E.164 number" in message


def test_bad_agent_address_is_refused(tmp_path, mk):
    agents = yaml.safe_load(yaml.safe_dump(mk.BASE_AGENTS))
    agents["agents"][0]["address"] = "ann@example"
    message = refuse(tmp_path, mk, agents=agents)
    assert "agents.yaml:2: agents[0].address: expected client:NAME, sip:user@host or an E.164 number" in message
    assert "found 'ann@example'" in message


def test_duplicate_agent_ids_are_refused(tmp_path, mk):
    agents = yaml.safe_load(yaml.safe_dump(mk.BASE_AGENTS))
    agents["agents"].append(dict(agents["agents"][1]))
    assert "agent ids must be unique, repeated: bob" in refuse(tmp_path, mk, agents=agents)


def test_general_queue_categories_are_required(tmp_path, mk):
    rules = mk.rules_with()
    del rules["categories"]["human"]
    assert "category 'human' is missing" in refuse(tmp_path, mk, rules=rules)


def test_a_key_written_twice_is_refused_with_both_lines(tmp_path, mk):
    """A pasted block that repeats a queue would silently replace the first (YAML keeps the last)."""
    import yaml

    rules = yaml.safe_dump(mk.BASE_RULES, sort_keys=False)
    assert "\nqueues:\n" in rules
    first_queue = rules.split("\nqueues:\n", 1)[1].splitlines()[0]  # "  billing:" say
    doubled = rules.replace("\nqueues:\n", "\nqueues:\n" + first_queue + "\n    max_wait_s: 1\n", 1)
    (tmp_path / "rules.yaml").write_text(doubled)
    mk.write(tmp_path / "agents.yaml", mk.BASE_AGENTS)
    with pytest.raises(rules_mod.RulesError) as exc:
        rules_mod.load(tmp_path / "rules.yaml", tmp_path / "agents.yaml")
    name = first_queue.strip().rstrip(":")
    line_first = doubled.splitlines().index(first_queue) + 1
    assert f"queues.{name}: duplicate key (first on line {line_first})" in str(exc.value)
    # the same key in two different mappings is fine
    (tmp_path / "rules.yaml").write_text(rules)
    assert rules_mod.load(tmp_path / "rules.yaml", tmp_path / "agents.yaml")


def test_yaml_aliases_are_walked_once_by_the_duplicate_check():
    from ivr.yamlfile import parse_text

    # 2**25 paths through 26 nodes (a walk along every path took minutes); each node is looked at once
    nested = "a0: &a0 {k: 1}\n" + "".join(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 26))
    assert parse_text(nested, "bomb.yaml").data["a1"] == [{"k": 1}, {"k": 1}]
    assert parse_text("a: &x [*x]\n", "loop.yaml").data["a"]  # a list holding itself: no RecursionError


def test_broken_yaml_names_the_line(tmp_path, mk):
    (tmp_path / "rules.yaml").write_text("timezone: UTC\nqueues: [\n")
    mk.write(tmp_path / "agents.yaml", mk.BASE_AGENTS)
    with pytest.raises(rules_mod.RulesError) as exc:
        rules_mod.load(tmp_path / "rules.yaml", tmp_path / "agents.yaml")
    assert "rules.yaml:3: not valid YAML" in str(exc.value)
