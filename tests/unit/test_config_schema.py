"""The config schema describes every default key, and options are named from it by a rule.

As distributed tests ``distributed-schema.yaml`` against ``distributed.yaml``. Run this file
as a script to rewrite the table in ``docs/configuration.md`` from the schema.
"""

import dataclasses
import json
import pathlib

import pytest
import yaml

from starburst_dask import config
from starburst_dask.options import ClusterOptions

DOC = pathlib.Path(__file__).parents[2] / "docs" / "configuration.md"
BEGIN, END = "<!-- table: generated from starburst-schema.yaml -->", "<!-- end of table -->"


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def test_defaults_validate_against_the_schema():
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(load(config.DEFAULTS_FILE), load(config.SCHEMA_FILE))


def test_the_schema_refuses_a_mistyped_or_mistaken_value():
    jsonschema = pytest.importorskip("jsonschema")
    schema = load(config.SCHEMA_FILE)
    for mistake in ({"max-cots": 5}, {"cost": {"max-cost": "lots"}}, {"spot": "maybe"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"starburst": mistake}, schema)


def test_schema_is_complete():
    """Every key in starburst.yaml is in the schema, and every key in the schema in the
    yaml, section by section."""

    def matches(defaults, schema, path):
        assert set(defaults) == set(schema["properties"]), (
            f"starburst.yaml and starburst-schema.yaml differ under {path}: only in the "
            f"yaml {sorted(set(defaults) - set(schema['properties']))}, only in the schema "
            f"{sorted(set(schema['properties']) - set(defaults))}"
        )
        for key, value in defaults.items():
            if "properties" in schema["properties"][key]:
                matches(value, schema["properties"][key], f"{path}.{key}")

    matches(load(config.DEFAULTS_FILE), load(config.SCHEMA_FILE), "the top")


def test_every_key_has_a_type_and_a_description():
    for key, node in keys():
        assert "type" in node or "enum" in node, key
        assert len(node.get("description", "")) > 20, key


def test_options_are_named_from_their_keys_one_to_one():
    names = [config.option_name(key) for key, _ in keys()]
    assert len(set(names)) == len(names)  # the rule names no two keys alike
    assert config.OPTIONS["max_cost"] == "cost.max-cost"
    assert config.OPTIONS["cost_alert"] == "cost.alert"
    assert config.OPTIONS["quota_auto_request"] == "quota.auto-request"
    assert {f.name for f in dataclasses.fields(ClusterOptions)} == set(config.CLUSTER_OPTIONS)


def test_former_names_point_at_current_options():
    for former, name in config.ALIASES.items():
        assert name in config.CLUSTER_OPTIONS and former not in config.OPTIONS


def test_the_documentation_lists_every_key_as_the_schema_describes_it():
    text = DOC.read_text()
    assert BEGIN in text and END in text, f"{DOC.name} lacks its table markers"
    documented = text.split(BEGIN)[1].split(END)[0].strip()
    assert documented == table(), (
        f"{DOC.name} is out of date with starburst-schema.yaml: run "
        f"`python tests/unit/test_config_schema.py` to rewrite its table"
    )


def keys():
    """(dotted key, schema) of every key the schema describes."""

    def walk(node, prefix):
        for key, child in node["properties"].items():
            if "properties" in child:
                yield from walk(child, f"{prefix}{key}.")
            else:
                yield prefix + key, child

    return list(walk(load(config.SCHEMA_FILE)["properties"]["starburst"], ""))


def table():
    """The Markdown table of every key: option, environment variable, type, default."""
    defaults = load(config.DEFAULTS_FILE)["starburst"]
    rows = [
        "| Key `starburst.` | Argument | Environment variable | Type | Default | What it does |",
        "|---|---|---|---|---|---|",
    ]
    for key, node in keys():
        default = defaults
        for part in key.split("."):
            default = default[part]
        kind = node.get("type") or " or ".join(json.dumps(v) for v in node["enum"])
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        argument = (
            f"`{config.option_name(key)}`" if not node.get("x-commands-only") else "(commands only)"
        )
        variable = "DASK_STARBURST__" + key.upper().replace(".", "__").replace("-", "_")
        description = " ".join(node["description"].split())
        description = description.replace("|", "\\|").replace("<", "&lt;")
        rows.append(
            f"| `{key}` | {argument} | `{variable}` | {kind} | "
            f"`{json.dumps(default)}` | {description} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    before, rest = DOC.read_text().split(BEGIN)
    DOC.write_text(f"{before}{BEGIN}\n{table()}\n{END}{rest.split(END)[1]}")
