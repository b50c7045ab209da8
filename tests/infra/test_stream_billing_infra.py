"""Issue 14: the policy and Bicep that bill streamed calls without buffering them.

Two things are run here rather than read:

- **The policy's C# expression** that decides whether to add ``stream_options``. No API
  Management gateway runs here, but a C# compiler does: the expression text is taken from
  ``infra/apim/chargeback-inbound.xml`` exactly as the gateway would get it (XML-unescaped, the
  named value substituted as text, which is how API Management applies named values), compiled
  with Mono's ``mcs`` against Json.NET (Debian's ``mono-mcs`` and ``libnewtonsoft-json5.0-cil``,
  installed by ``make csharp``) and run over a table of paths and api-versions. Only ``context``
  is a stand-in, with the members and types the policy-expression reference gives
  (learn.microsoft.com/azure/api-management/api-management-policy-expressions#ContextVariables:
  ``IUrl.Path`` string, ``IUrl.Query`` ``IReadOnlyDictionary<string, string[]>`` whose
  ``GetValueOrDefault(name, default)`` returns the comma-separated values).

- **The Bicep values of the named values**, with ARM's semantics. No Bicep compiler can run
  here: the Bicep CLI is a .NET binary downloaded from GitHub (``az bicep install`` fetches it
  too), and neither PyPI, npm nor Debian packages it (looked up: Debian has azure-cli but no
  bicep; npm and PyPI have parsers and wrappers around the CLI, not the compiler). So each value
  expression is read from ``infra/modules/apim-chargeback.bicep`` and evaluated by a small
  evaluator that implements the ARM template functions the file uses, as documented: Bicep's
  ``c ? a : b`` compiles to ARM's ``if(c, a, b)`` (learn.microsoft.com/azure/azure-resource-manager/
  templates/template-functions-logical#if); ARM's ``string()`` of a boolean is ``True``/``False``
  (Azure/PSRule.Rules.Azure#793: "ARM: string(true()) = True, string(false()) = False", which is
  why the named values were always off before this issue).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from itertools import product
from pathlib import Path

import pytest

from tests.support.bicep import APIM, APIM_PART, INFRA, MAIN, Bicep, bicep_files

ROLES = Bicep(INFRA / "modules" / "roles.bicep")
RESOURCE_LOGS = Bicep(INFRA / "modules" / "resource-logs.bicep")

# --- ARM's evaluation of the Bicep value expressions ------------------------------------------

TOKEN = re.compile(r"\s*('(?:[^'\\]|\\.)*'|\w+|[?:(),])")


def tokens(text: str) -> list[str]:
    found, position = [], 0
    text = text.strip()
    while position < len(text):
        match = TOKEN.match(text, position)
        assert match, f"cannot read {text[position:]!r}"
        found.append(match.group(1))
        position = match.end()
    return found


def arm_string(value: object) -> str:
    """ARM's string(): booleans as True/False (PSRule.Rules.Azure#793), numbers in decimal."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def arm_to_lower(value: object) -> str:
    return str(value).lower()


def arm_to_upper(value: object) -> str:
    return str(value).upper()


FUNCTIONS: dict[str, Callable[[object], str]] = {
    "string": arm_string,
    "toLower": arm_to_lower,
    "toUpper": arm_to_upper,
}


def evaluate(expression: str, params: Mapping[str, object]) -> object:
    """A Bicep value expression made of parameters, string literals, calls and ``?:``."""
    stream = tokens(expression)
    value, rest = _ternary(stream, params)
    assert not rest, f"unread: {rest}"
    return value


def _ternary(stream: list[str], params: Mapping[str, object]) -> tuple[object, list[str]]:
    condition, rest = _primary(stream, params)
    if not rest or rest[0] != "?":
        return condition, rest
    when_true, rest = _ternary(rest[1:], params)
    assert rest[0] == ":", rest
    when_false, rest = _ternary(rest[1:], params)
    # ARM's if(): the condition must be a boolean; the chosen branch is returned as it is.
    assert isinstance(condition, bool), f"if() needs a boolean, got {condition!r}"
    return (when_true if condition else when_false), rest


def _primary(stream: list[str], params: Mapping[str, object]) -> tuple[object, list[str]]:
    head, rest = stream[0], stream[1:]
    if head.startswith("'"):
        return head[1:-1].replace("\\'", "'"), rest
    if rest and rest[0] == "(":
        argument, rest = _ternary(rest[1:], params)
        assert rest[0] == ")", rest
        return FUNCTIONS[head](argument), rest[1:]
    return params[head], rest


def test_the_evaluator_follows_arm_on_booleans() -> None:
    # Guards the tests below: the old Bicep's string(bool) renders as ARM does, capitalised.
    assert evaluate("string(flag)", {"flag": True}) == "True"
    assert evaluate("string(flag)", {"flag": False}) == "False"
    assert evaluate("flag ? 'true' : 'false'", {"flag": False}) == "false"
    assert evaluate("toLower(string(flag))", {"flag": True}) == "true"


def param_default(bicep: Bicep, name: str) -> str:
    match = re.search(rf"^param {name} \w+ = (.+)$", bicep.text, re.M)
    assert match, f"{bicep.path.name}: {name} has no default"
    return match.group(1).strip()


def named_values() -> dict[str, str]:
    """namedValues of apim-chargeback.bicep: display name -> value expression."""
    text = APIM_PART.variable_text("namedValues")
    return dict(re.findall(r"^\s*'([\w-]+)':\s*(.+?)\s*$", text, re.M))


def rendered(include_stream_usage: bool, read_stream_bodies: bool) -> dict[str, object]:
    params: dict[str, object] = {
        "includeStreamUsage": include_stream_usage,
        "readStreamBodies": read_stream_bodies,
        "businessUnitHeader": "x-business-unit",
        "endUserHeader": "x-end-user",
    }
    return {name: evaluate(value, params) for name, value in named_values().items()}


@pytest.mark.parametrize(("include", "read"), list(product([True, False], repeat=2)))
def test_boolean_named_values_render_as_the_lowercase_text_the_policy_compares(
    include: bool, read: bool
) -> None:
    values = rendered(include, read)
    assert values["chargeback-include-stream-usage"] == ("true" if include else "false")
    assert values["chargeback-read-stream-bodies"] == ("true" if read else "false")
    assert values["chargeback-business-unit-header"] == "x-business-unit"


def test_streams_flow_unread_by_default_and_streamed_calls_ask_for_usage() -> None:
    for bicep in (MAIN, APIM_PART):
        assert param_default(bicep, "readStreamBodies") == "false", bicep.path.name
        assert param_default(bicep, "includeStreamUsage") == "true", bicep.path.name
    # main.bicep hands its switches to the module unchanged.
    body = MAIN.module("apimChargeback").body
    assert "includeStreamUsage: includeStreamUsage" in body
    assert "readStreamBodies: readStreamBodies" in body


# --- The stream_options gate, compiled and run --------------------------------------------------

NEWTONSOFT = Path("/usr/lib/cli/Newtonsoft.Json-5.0/Newtonsoft.Json.dll")
CSHARP_HINT = (
    "Mono's C# compiler and Json.NET are needed to run the policy's expressions: `make csharp` "
    "(Debian packages mono-mcs and libnewtonsoft-json5.0-cil)"
)

PROGRAM = """
using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

public class Url {
    public string Path { get; set; }
    public IReadOnlyDictionary<string, string[]> Query { get; set; }
}
public class Request { public Url Url { get; set; } }
public class Context {
    public Request Request { get; set; }
    public IReadOnlyDictionary<string, object> Variables { get; set; }
}
public static class QueryExtensions {
    public static string GetValueOrDefault(
            this IReadOnlyDictionary<string, string[]> query, string name, string defaultValue) {
        string[] values;
        return query.TryGetValue(name, out values) ? string.Join(",", values) : defaultValue;
    }
}
public static class Policy {
    %(methods)s
    public static void Main() {
        foreach (var item in JArray.Parse(Console.In.ReadToEnd())) {
            var query = new Dictionary<string, string[]>();
            foreach (var pair in (JObject)item["query"]) {
                query[pair.Key] = new[] { (string)pair.Value };
            }
            var context = new Context {
                Request = new Request { Url = new Url { Path = (string)item["path"], Query = query } },
                Variables = new Dictionary<string, object> { { "chargeback-request-body", (string)item["body"] } },
            };
            object result;
            switch ((int)item["variant"]) {
                %(cases)s
                default: throw new Exception("no such variant");
            }
            Console.WriteLine(result);
        }
    }
}
"""

# The named value as ARM writes it (now and before this issue) and as someone might type it.
VARIANTS = ["true", "True", "false", "False"]


def policy_expression(file: str, variable: str) -> str:
    """The C# of a set-variable expression, as the gateway gets it after XML parsing."""
    root = ET.parse(APIM / file).getroot()
    (element,) = [e for e in root.iter("set-variable") if e.get("name") == variable]
    value = element.get("value") or ""
    assert value.startswith("@{") and value.endswith("}"), value[:20]
    return value[2:-1]


@cache
def compiled_gate(workdir: Path) -> Path:
    compiler = shutil.which("mcs")
    if compiler is None or not NEWTONSOFT.is_file() or shutil.which("mono") is None:
        pytest.fail(CSHARP_HINT)
    code = policy_expression("chargeback-inbound.xml", "chargeback-add-stream-usage")
    assert "{{chargeback-include-stream-usage}}" in code
    methods = "\n".join(
        f"static object Gate{n}(Context context) {{\n"
        + code.replace("{{chargeback-include-stream-usage}}", value)
        + "\n}"
        for n, value in enumerate(VARIANTS)
    )
    cases = "\n".join(f"case {n}: result = Gate{n}(context); break;" for n in range(len(VARIANTS)))
    source = workdir / "policy.cs"
    source.write_text(PROGRAM % {"methods": methods, "cases": cases}, encoding="utf-8")
    shutil.copy(NEWTONSOFT, workdir / NEWTONSOFT.name)
    program = workdir / "policy.exe"
    result = subprocess.run(
        [compiler, "-nologo", f"-r:{NEWTONSOFT}", "-r:System.Core", f"-out:{program}", str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return program


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield compiled_gate(tmp_path_factory.mktemp("policy"))


STREAM = json.dumps({"stream": True, "messages": [{"role": "user", "content": "hi"}]})
NOT_STREAM = json.dumps({"stream": False, "messages": []})
DEPLOYMENT = "/openai/deployments/gpt-4o/chat/completions"

# (named value, path, api-version or None, body) -> stream_options added?
# Azure OpenAI accepts stream_options from 2024-09-01-preview ("Azure OpenAI API preview
# lifecycle": "Changes between 2024-09-01-preview and 2024-08-01-preview ... stream_options &
# include_usage added", learn.microsoft.com/azure/ai-services/openai/api-version-deprecation) and
# in GA from 2024-10-21 (Azure.AI.OpenAI 2.1.0 release notes: "The 2024-10-21 API version brings
# GA AOAI support for streaming token usage in chat completions"); the v1 API has it
# ({endpoint}/openai/v1/, openai/openai-node azure.md).
GATE_TABLE: list[tuple[str, str, str | None, str, bool]] = [
    ("true", DEPLOYMENT, "2024-10-21", STREAM, True),
    ("true", DEPLOYMENT, "2025-01-01", STREAM, True),
    ("true", DEPLOYMENT, "2024-09-01-preview", STREAM, True),
    ("true", DEPLOYMENT, "2024-10-01-preview", STREAM, True),
    ("true", DEPLOYMENT, "2025-04-01-preview", STREAM, True),
    ("true", DEPLOYMENT, "2024-09-01-Preview", STREAM, True),
    ("true", DEPLOYMENT, "2024-08-01-preview", STREAM, False),
    ("true", DEPLOYMENT, "2024-06-01", STREAM, False),
    ("true", DEPLOYMENT, "2024-02-01", STREAM, False),
    ("true", DEPLOYMENT, "2023-05-15", STREAM, False),
    ("true", DEPLOYMENT, "2024-09-01", STREAM, False),  # no such GA: before 2024-10-21
    ("true", DEPLOYMENT, None, STREAM, False),
    ("true", DEPLOYMENT, "latest", STREAM, False),
    ("true", DEPLOYMENT, "2024-10", STREAM, False),
    ("true", "/openai/deployments/davinci/completions", "2024-10-21", STREAM, True),
    ("true", "/openai/deployments/ada/embeddings", "2024-10-21", STREAM, False),
    ("true", "/openai/v1/chat/completions", None, STREAM, True),
    ("true", "/openai/v1/chat/completions", "preview", STREAM, True),
    ("true", "/openai/v1/responses", None, STREAM, False),
    ("true", DEPLOYMENT, "2024-10-21", NOT_STREAM, False),
    ("true", DEPLOYMENT, "2024-10-21", '{"messages": []}', False),
    ("true", DEPLOYMENT, "2024-10-21", "not json {", False),
    ("true", DEPLOYMENT, "2024-10-21", "", False),
    ("True", DEPLOYMENT, "2024-10-21", STREAM, True),  # ARM's string(true)
    ("false", DEPLOYMENT, "2024-10-21", STREAM, False),
    ("False", "/openai/v1/chat/completions", None, STREAM, False),
]


def run_gate(program: Path, cases: list[tuple[str, str, str | None, str]]) -> list[bool]:
    items = [
        {
            "variant": VARIANTS.index(named),
            "path": path,
            "query": {} if version is None else {"api-version": version},
            "body": body,
        }
        for named, path, version, body in cases
    ]
    result = subprocess.run(
        ["mono", str(program)],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        check=False,
        cwd=program.parent,
    )
    assert result.returncode == 0, result.stderr
    return [line == "True" for line in result.stdout.split()]


def test_stream_options_only_for_api_versions_that_accept_it(gate: Path) -> None:
    answers = run_gate(gate, [row[:4] for row in GATE_TABLE])
    wrong = [row for row, answer in zip(GATE_TABLE, answers, strict=True) if answer != row[4]]
    assert not wrong, wrong


def test_the_rendered_named_value_switches_the_gate(gate: Path) -> None:
    """The whole path of the switch: Bicep parameter -> ARM rendering -> the policy's test."""
    for include in (True, False):
        value = rendered(include, False)["chargeback-include-stream-usage"]
        assert isinstance(value, str)
        (answer,) = run_gate(gate, [(value, DEPLOYMENT, "2024-10-21", STREAM)])
        assert answer is include


def test_both_fragments_compare_the_switches_ignoring_case() -> None:
    for file, name in (
        ("chargeback-inbound.xml", "chargeback-include-stream-usage"),
        ("chargeback-outbound.xml", "chargeback-read-stream-bodies"),
    ):
        text = (APIM / file).read_text(encoding="utf-8")
        uses = re.findall(rf'"\{{\{{{name}\}}\}}"([^;]*)', text)
        assert uses, f"{file}: {name} not used"
        for use in uses:
            assert use.startswith('.Trim().Equals("true", StringComparison.OrdinalIgnoreCase)'), use


@pytest.mark.parametrize("path", sorted(APIM.glob("*.xml")), ids=lambda p: p.name)
def test_attribute_expressions_have_no_line_comments(path: Path) -> None:
    """An XML parser joins an attribute's lines into one (XML 1.0, 3.3.3 attribute-value
    normalization; ElementTree does, as the compile above shows): a // comment would then swallow
    the rest of the expression. /* */ survives either way."""
    for element in ET.parse(path).getroot().iter():
        for name, value in element.attrib.items():
            if value.startswith("@"):
                assert not re.search(r'(?<![:"])//', value), f"{element.tag} {name}"


# --- LLM logs: the diagnostic, the diagnostic setting, the hub and its roles ------------------


def resource_body(bicep: Bicep, symbol: str) -> str:
    match = re.search(rf"^resource {symbol} '[^']+'[^\n]*\{{\n(.*?)^\}}", bicep.text, re.M | re.S)
    assert match, f"{bicep.path.name}: no resource {symbol}"
    return match.group(1)


def test_the_diagnostic_setting_streams_both_categories_to_the_resource_logs_hub() -> None:
    body = resource_body(APIM_PART, "resourceLogsToEventHub")
    assert "scope: apim" in body
    assert re.findall(r"category: '(\w+)'", body) == ["GatewayLlmLogs", "GatewayLogs"]
    assert body.count("enabled: true") == 2
    assert "eventHubAuthorizationRuleId: resourceLogsAuthorizationRuleId" in body
    assert "eventHubName: resourceLogsEventHubName" in body
    passed = MAIN.module("apimChargeback").body
    assert (
        "resourceLogsAuthorizationRuleId: deployResourceLogs ? resourceLogs.outputs.authorizationRuleId : ''"
        in passed
    )
    assert (
        "resourceLogsEventHubName: deployResourceLogs ? resourceLogs.outputs.eventHubName : ''"
        in passed
    )


def test_llm_logging_is_on_for_usage_only_by_default() -> None:
    assert param_default(MAIN, "enableGatewayLlmLogs") == "true"
    for bicep in (MAIN, APIM_PART):
        assert param_default(bicep, "logLlmMessages") == "false", bicep.path.name
    assert APIM_PART.variable_keys("usageLogging") == ["logs"]
    assert APIM_PART.variable_text("usageLogging").split("logs:")[1].strip().startswith("'enabled'")
    # Prompts and completions only when asked for: otherwise no requests/responses settings.
    assert re.fullmatch(
        r"\s*logLlmMessages \? \{\s*requests: llmMessages\s*responses: llmMessages\s*\} : \{\}\s*",
        APIM_PART.variable_text("messageLogging"),
    )
    assert (
        APIM_PART.variable_text("largeLanguageModel").strip()
        == "union(usageLogging, messageLogging)"
    )


def test_the_azure_monitor_diagnostic_logs_every_call_and_no_body() -> None:
    """Bodies would buffer the stream (API Management's SSE guidance) and carry prompts;
    sampling would drop billable calls."""
    text = APIM_PART.variable_text("azureMonitorDiagnostic")
    assert re.findall(r"bytes: (\d+)", text) == ["0", "0", "0", "0"]
    assert re.findall(r"headers: (\S+)", text) == ["[]", "[]", "[]", "[]"]
    assert "percentage: 100" in text and "samplingType: 'fixed'" in text
    assert "largeLanguageModel: largeLanguageModel" in text
    for symbol in ("apiDiagnostic", "serviceDiagnostic"):
        body = resource_body(APIM_PART, symbol)
        assert "name: 'azuremonitor'" in body and "properties: azureMonitorDiagnostic" in body


def test_the_function_reads_the_resource_logs_hub_with_its_identity() -> None:
    body = resource_body(ROLES, "functionReceivesResourceLogs")
    assert "scope: resourceLogsHub" in body
    assert "roleDefinitions', eventHubsDataReceiver)" in body
    assert "principalId: functionPrincipalId" in body
    passed = MAIN.module("roles").body
    assert (
        "resourceLogsEventHubName: deployResourceLogs ? resourceLogs.outputs.eventHubName : ''"
        in passed
    )


def test_the_one_sas_rule_is_azure_monitors_and_stays_in_its_namespace() -> None:
    """A diagnostic setting streams to Event Hubs only with a SAS rule with Manage, Send and
    Listen ("Diagnostic settings in Azure Monitor", destination limitations), so the resource-logs
    namespace allows SAS; the gateway namespace still does not, and no key is ever read."""
    with_rules = [b.path.name for b in bicep_files() if "authorizationRules" in b.text]
    assert with_rules == ["resource-logs.bicep"]
    assert "disableLocalAuth: false" in RESOURCE_LOGS.text
    assert "disableLocalAuth: true" in Bicep(INFRA / "modules" / "eventhubs.bicep").text
    rule = resource_body(RESOURCE_LOGS, "azureMonitorRule")
    assert "rights: ['Manage', 'Send', 'Listen']" in rule
    assert re.findall(r"^output (\w+)", RESOURCE_LOGS.text, re.M).count("authorizationRuleId") == 1
    # The rule's id reaches nothing but the diagnostic setting.
    uses = [b.path.name for b in bicep_files() if "outputs.authorizationRuleId" in b.text]
    assert uses == ["main.bicep"]
    assert MAIN.text.count("outputs.authorizationRuleId") == 1
    assert APIM_PART.text.count("resourceLogsAuthorizationRuleId") == 3  # param, condition, use
    for bicep in bicep_files():
        assert "listKeys" not in bicep.text, bicep.path.name
