"""The placeholder sandbox on its own: what a template may use and what rendering reaches."""

from __future__ import annotations

import pytest

from enque.canned.template import ENV, TemplateProblem, check_template, render_template

CONTEXT = {
    "customer": {"name": "Ann <b>", "email": "ann@example.com"},
    "agent": {"name": "Zed", "email": None},
    "ticket": {"id": "t-1", "number": 42, "subject": "Hi & bye"},
    "workspace": {"name": "Acme"},
}


def test_documented_placeholders_filters_and_conditions():
    source = (
        "{{customer.name}}|{{ customer.email }}|{{agent.name}}|{{ticket.number}}|"
        "{{ticket.subject}}|{{workspace.name}}|{{ticket.id}}|"
        '{{ agent.email | default("none", true) | upper }}|'
        "{% if customer.name and not agent.email %}yes{% else %}no{% endif %}"
    )
    assert check_template(source) == [
        "agent.email",
        "agent.name",
        "customer.email",
        "customer.name",
        "ticket.id",
        "ticket.number",
        "ticket.subject",
        "workspace.name",
    ]
    assert render_template(source, CONTEXT) == (
        "Ann &lt;b&gt;|ann@example.com|Zed|42|Hi &amp; bye|Acme|t-1|NONE|yes"
    )


def test_missing_values_render_empty():
    assert render_template("[{{customer.name}}][{{agent.name}}]", {}) == "[][]"


@pytest.mark.parametrize(
    "source",
    [
        "{{ customer.items() }}",
        "{{ customer.__class__.__init__.__globals__ }}",
        "{{ ticket.number.__class__ }}",
        "{{ customer['name'] }}",
        "{{ cycler }}",
        "{{ range(99999999) | list }}",
        "{% macro m() %}{% endmacro %}",
        "{% set x = 1 %}",
        "{% extends 'base' %}",
        "{% raw %}{% endraw %}{{ self }}",
        "{{ 9 ** 9999999 }}",
        "{{ customer.name | format('%s') }}",
    ],
)
def test_everything_else_is_refused(source: str):
    with pytest.raises(TemplateProblem):
        check_template(source)
    with pytest.raises(TemplateProblem):
        render_template(source, CONTEXT)


def test_the_sandbox_reaches_nothing_but_the_mapping_keys():
    """Even without the check, names resolve only as keys of the plain dict context."""
    leaks = (
        "{{ customer.items }}{{ customer.__class__ }}{{ customer.name.__class__ }}"
        "{{ customer.name.upper }}{{ customer['__class__'] }}"
    )
    assert ENV.from_string(leaks).render(CONTEXT) == ""
    assert ENV.from_string("{{ range }}{{ lipsum }}{{ namespace }}").render(CONTEXT) == ""


def test_size_limit():
    with pytest.raises(TemplateProblem):
        check_template("x" * 100_001)
