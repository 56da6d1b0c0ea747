"""deploy/prometheus-alerts.yml and deploy/grafana-dashboard.json ask only for what Threshold exports:
every metric their PromQL names is in a live scrape (after traffic that touches every metric), every
label they match or group by is one that metric carries (or the scrape target's `job`/`instance`), and
every value they match a label against is one the label can take."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability.helpers import CLOSED_LABELS, TOKEN, names_and_labels, run_traffic, scrape
from tests.oidc.helpers import OP

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
TARGET_LABELS = frozenset({"job", "instance"})
"""Labels Prometheus adds to every series of a scrape target."""
PROMQL_WORDS = frozenset(
    {
        *("sum", "min", "max", "avg", "count", "topk", "bottomk", "by", "without", "on", "ignoring"),
        *("rate", "irate", "increase", "delta", "histogram_quantile", "absent", "clamp_min", "clamp_max"),
        *("and", "or", "unless", "bool", "offset", "group_left", "group_right", "label_values", "vector"),
    }
)
GRAFANA_RANGES = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m"}


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_panels() -> Iterator[dict[str, Any]]:
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[str]:
    document = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard_panels() for t in p.get("targets", [])]
    exprs += [v["definition"] for v in document["templating"]["list"] if v.get("type") == "query"]
    return exprs


def expressions() -> list[str]:
    found = [rule["expr"] for rule in alert_rules()] + dashboard_exprs()
    assert len(found) > 20
    return found


def selectors(expr: str) -> Iterator[tuple[str, str]]:
    """(metric name, matcher text) of each series selector."""
    for match in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?", expr):
        name = match.group(1)
        if name.startswith("threshold_"):
            yield name, (match.group(2) or "{}")[1:-1]


def bare_words(expr: str) -> set[str]:
    """Identifiers outside label matchers, strings, ranges and grouping clauses: functions, keywords and
    metric names; nothing else may be left."""
    text = re.sub(r'"[^"]*"', '""', expr)
    for variable, value in GRAFANA_RANGES.items():
        text = text.replace(variable, value)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", r"\1", text)
    text = re.sub(r"label_values\(([a-z_:]+),\s*[a-z_]+\)", r"label_values(\1)", text)
    return set(re.findall(r"\b[a-zA-Z_][a-zA-Z0-9_:]*\b", text)) - {"e"}


def groupings(expr: str) -> Iterator[str]:
    for clause in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        yield from (label.strip() for label in clause.split(",") if label.strip())


@pytest.fixture
async def exported(op_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """Series name -> label names, from a scrape after traffic that touches every metric."""
    op: OP = await op_factory(metrics_token=TOKEN, rate_limit={"signup_per_ip": 1})
    await run_traffic(op, monkeypatch)
    return names_and_labels(await scrape(op.rp))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_metric_and_label_the_rules_and_dashboard_use_is_exported(
    exported: dict[str, set[str]],
) -> None:
    series = exported
    assert set(series) == set(CLOSED_LABELS), "the scrape and the suite's list of series differ"
    for expr in expressions():
        used = [name for name, _ in selectors(expr)]
        assert used, f"no Threshold metric in {expr!r}"
        unknown = bare_words(expr) - PROMQL_WORDS - set(series)
        assert not unknown, f"not a metric Threshold exports, nor PromQL: {unknown} in {expr!r}"
        labels_here = set().union(*(series[name] for name in used)) | TARGET_LABELS
        for label in groupings(expr):
            assert label in labels_here, f"{label!r} is not a label of {used} in {expr!r}"
        for name, matchers in selectors(expr):
            for label, op, matched in re.findall(r'([a-zA-Z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"', matchers):
                assert label in series[name] | TARGET_LABELS, f"{name} has no label {label!r}"
                closed = CLOSED_LABELS[name].get(label)
                if closed and op == "=":
                    assert matched in closed, f"{name}{{{label}={matched!r}}} can never match"


def test_the_alert_rules_are_complete() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule
    text = "\n".join(rule["expr"] for rule in rules)
    # what the issue asks the rules to watch
    for metric in (
        "threshold_refresh_token_reuse_total",
        'threshold_queue_oldest_age_seconds{queue="mail"}',
        "threshold_invalidation_feed_up",
        'threshold_http_request_duration_seconds_count{status="5xx"}',
        "threshold_rate_limited_requests_total",
    ):
        assert metric in text, metric


def test_the_dashboard_is_importable() -> None:
    document = json.loads(DASHBOARD.read_text())
    assert document["uid"] and document["title"] and document["schemaVersion"] >= 36
    panels = list(dashboard_panels())
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in document["templating"]["list"]}
    assert {"datasource", "job"} <= variables
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["refId"] and t["expr"] for t in panel["targets"]), panel["title"]
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        for target in panel["targets"]:
            assert 'job=~"$job"' in target["expr"], target["expr"]
