"""Consistency of infra/, the APIM policy, local settings and the code, without a Bicep compiler.

No Bicep compiler or Azure runs here, so these tests read the Bicep as text (with comments and
string contents masked out) and check what text can show: that every module exists and is
passed only parameters it declares, that the app settings the Bicep sets are exactly the ones
the code reads, that the policy is well-formed XML and emits exactly the v1 contract's fields.
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]
from pydantic import AliasChoices

from chargeback.settings import Settings
from tests.support.bicep import (
    APIM,
    APIM_PART,
    FUNCTION_APP,
    INFRA,
    MAIN,
    ROOT,
    Bicep,
    bicep_files,
    mask,
)

# CONTRACTS.md §1a, in the order the policy must write them: small fields first, bodies last.
V1_FIELDS = [
    "version", "requestId", "timestamp", "method", "url", "statusCode", "operationId", "apiId",
    "productId", "subscriptionId", "subscriptionName", "userId", "appId", "businessUnit",
    "endUser", "clientIp", "backendId", "region", "responseContentType", "model", "usage",
    "requestBody", "responseBody",
]  # fmt: skip
V1_REQUIRED = ["version", "requestId", "timestamp", "url", "statusCode"]

# Settings the Functions host and the Event Hubs binding read (function_app.py names them).
BINDING_SETTINGS = {"AzureWebJobsStorage", "EventHubConnection", "EVENTHUB_NAME",
                    "EVENTHUB_CONSUMER_GROUP", "ResourceLogsEventHubConnection",
                    "RESOURCE_LOGS_EVENTHUB_NAME", "RESOURCE_LOGS_EVENTHUB_CONSUMER_GROUP"}  # fmt: skip
# Set only in Azure (none today: even the Entra ID auth string is read by the code).
AZURE_ONLY: set[str] = set()
# Set only locally: Flex Consumption takes the runtime from functionAppConfig and rejects it.
LOCAL_ONLY = {"FUNCTIONS_WORKER_RUNTIME"}
# Identity-based connections: <name>__credential and <name>__clientId pick the identity.
IDENTITY_CONNECTIONS = {
    "AzureWebJobsStorage",
    "EventHubConnection",
    "ResourceLogsEventHubConnection",
}

ROLES = {  # built-in role definition ids, the same in every tenant
    "a638d3c7-ab3a-418d-83e6-5f17a39d4fde": "Azure Event Hubs Data Receiver",
    "2b629674-e913-4c01-ae53-ef4638d8f975": "Azure Event Hubs Data Sender",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}


# --- Reading Bicep as text -----------------------------------------------------------------------


def test_masking_keeps_structure_and_drops_strings_and_comments() -> None:
    text = "var a = { // {not a brace}\n  k: 'x${f('}')}y'\n  'q-r': 1 /* } */\n}\n"
    bicep = Bicep(Path("x.bicep"))
    bicep.__dict__["text"] = text
    assert bicep.variable_keys("a") == ["k", "q-r"]
    assert len(mask(text)) == len(text)


# --- Modules and parameters --------------------------------------------------------------------


@pytest.mark.parametrize("bicep", bicep_files(), ids=lambda b: str(b.path.relative_to(INFRA)))
def test_every_module_exists_and_gets_only_declared_parameters(bicep: Bicep) -> None:
    for module in bicep.modules:
        if module.is_registry:
            # Azure Verified Modules, pinned to one published version.
            assert re.fullmatch(r"br/public:avm/res/[\w/-]+:\d+\.\d+\.\d+", module.ref), module.ref
            continue
        assert module.file.is_file(), f"{bicep.path.name}: module {module.name} -> {module.ref}"
        declared = Bicep(module.file).params
        undeclared = set(module.passed) - set(declared)
        assert not undeclared, f"{module.name}: {module.ref} declares no {sorted(undeclared)}"
        missing = {name for name, has_default in declared.items() if not has_default}
        missing -= set(module.passed)
        assert not missing, f"{module.name}: required {sorted(missing)} not passed"


@pytest.mark.parametrize("bicep", bicep_files(), ids=lambda b: str(b.path.relative_to(INFRA)))
def test_loaded_files_exist(bicep: Bicep) -> None:
    for match in re.finditer(r"load(?:Text|Json)Content\('([^']+)'\)", bicep.text):
        assert (bicep.path.parent / match.group(1)).is_file(), match.group(1)


def test_main_parameters_file_matches_main_bicep() -> None:
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(given) <= set(MAIN.params), sorted(set(given) - set(MAIN.params))
    required = {name for name, has_default in MAIN.params.items() if not has_default}
    assert required <= set(given), sorted(required - set(given))


def test_azure_yaml_points_at_the_infra_and_the_tagged_function() -> None:
    azure = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert (ROOT / azure["infra"]["path"] / f"{azure['infra']['module']}.bicep").is_file()
    (service_name, service), *_ = azure["services"].items()
    assert service["host"] == "function" and service["language"] == "python"
    assert (ROOT / service["project"]).resolve() == ROOT
    # azd finds the app to deploy by this tag.
    assert f"'azd-service-name': '{service_name}'" in MAIN.module("functionApp").body


# The one SAS rule of the deployment: Azure Monitor streams resource logs to Event Hubs only with
# one (modules/resource-logs.bicep says why; tests/infra/test_stream_billing_infra.py keeps it
# confined to that namespace and to the diagnostic setting).
SAS_RULE_MODULE = "resource-logs.bicep"


def test_no_secret_is_created_or_passed() -> None:
    for bicep in bicep_files():
        for needle in ("listKeys(", "AccountKey=", "SharedAccessKey=", "authorizationRules"):
            if needle == "authorizationRules" and bicep.path.name == SAS_RULE_MODULE:
                continue
            assert needle not in bicep.text, f"{bicep.path.name}: {needle}"
    assert "disableLocalAuth: true" in Bicep(INFRA / "modules" / "eventhubs.bicep").text
    assert "allowSharedKeyAccess: false" in Bicep(INFRA / "modules" / "storage.bicep").text
    assert "disableLocalAuth: true" in MAIN.module("appInsights").body


# --- App settings: code, Bicep and local settings agree ------------------------------------------


def code_settings() -> set[str]:
    """App settings chargeback/settings.py reads: each field's alias (first choice)."""
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            alias = alias.choices[0]
        names.add(alias if isinstance(alias, str) else name)
    return names


def connection(name: str) -> str:
    """EventHubConnection__fullyQualifiedNamespace -> EventHubConnection."""
    return name.split("__", 1)[0]


def bicep_app_settings() -> list[str]:
    """Keys of every *Setting(s) object in main.bicep and the Function module."""
    keys = []
    for bicep in (MAIN, FUNCTION_APP):
        for variable in bicep.variables:
            if variable.endswith(("Settings", "Setting")):
                keys += bicep.variable_keys(variable)
    return keys


def local_settings() -> dict[str, str]:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())
    assert sample["IsEncrypted"] is False
    values: dict[str, str] = sample["Values"]
    return values


def test_code_settings_are_found() -> None:
    # Guards the two tests below against reading nothing.
    assert {"APPLICATIONINSIGHTS_CONNECTION_STRING", "CHARGEBACK_DEADLETTER_CONTAINER",
            "DeadLetterStorage__clientId"} <= code_settings()  # fmt: skip


def test_bicep_sets_exactly_the_settings_the_code_reads() -> None:
    keys = bicep_app_settings()
    assert len(keys) == len(set(keys)), "a setting is set twice"
    expected = {connection(n) for n in code_settings() | BINDING_SETTINGS}
    assert {connection(k) for k in keys} - AZURE_ONLY == expected
    # The identity-based forms the code reads by name are set by name.
    assert {n for n in code_settings() if "__" in n} <= set(keys)
    for name in IDENTITY_CONNECTIONS:
        assert f"{name}__credential" in keys and f"{name}__clientId" in keys, name
    assert not {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION"} & set(keys)


def test_every_settings_object_reaches_the_function_app() -> None:
    union = FUNCTION_APP.variable_text("appSettings")
    for variable in FUNCTION_APP.variables:
        if variable.endswith("Settings") and variable != "appSettings":
            assert variable in union, f"{variable} is not in appSettings"
    passed = MAIN.module("functionApp").body
    for variable in MAIN.variables:
        if variable.endswith(("Settings", "Setting")):
            assert re.search(rf"\b{variable}\b", passed), f"{variable} not passed to functionApp"
    assert "appSettings" in FUNCTION_APP.text.split("siteConfig", 1)[1]


def test_local_settings_sample_lists_exactly_the_settings_the_code_reads() -> None:
    keys = set(local_settings())
    expected = {connection(n) for n in code_settings() | BINDING_SETTINGS} | LOCAL_ONLY
    assert {connection(k) for k in keys} == expected
    values = local_settings()
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert "UseDevelopmentEmulator=true" in values["EventHubConnection"]


def test_local_hub_matches_the_emulator_and_the_bicep_defaults() -> None:
    values = local_settings()
    config = json.loads((INFRA / "local" / "Config.json").read_text())
    (namespace,) = config["UserConfig"]["NamespaceConfig"]
    (hub,) = namespace["Entities"]
    assert hub["Name"] == values["EVENTHUB_NAME"]
    assert values["EVENTHUB_CONSUMER_GROUP"] in [g["Name"] for g in hub["ConsumerGroups"]]
    assert f"param eventHubName string = '{values['EVENTHUB_NAME']}'" in MAIN.text
    assert f"param eventHubConsumerGroupName string = '{values['EVENTHUB_CONSUMER_GROUP']}'" in (
        MAIN.text
    )


def test_compose_runs_the_emulator_with_this_config_and_azurite() -> None:
    compose = yaml.safe_load((INFRA / "local" / "compose.yaml").read_text())
    services = compose["services"]
    emulator = services["eventhubs"]
    assert emulator["image"].startswith("mcr.microsoft.com/azure-messaging/eventhubs-emulator")
    source, target = emulator["volumes"][0].split(":", 1)
    assert (INFRA / "local" / source).resolve() == (INFRA / "local" / "Config.json").resolve()
    assert target == "/Eventhubs_Emulator/ConfigFiles/Config.json"
    assert emulator["environment"]["BLOB_SERVER"] == "azurite"
    assert services["azurite"]["image"].startswith("mcr.microsoft.com/azure-storage/azurite")
    assert "10000:10000" in services["azurite"]["ports"]  # UseDevelopmentStorage=true


# --- Roles ---------------------------------------------------------------------------------------


def test_every_role_is_a_named_built_in_role() -> None:
    roles = Bicep(INFRA / "modules" / "roles.bicep")
    found = dict(re.findall(r"'([0-9a-f-]{36})' // ([^\n]+)", roles.text))
    assert found == ROLES
    for line in roles.text.splitlines():
        for guid in re.findall(r"[0-9a-f]{8}-[0-9a-f-]{27}", line):
            assert guid in ROLES and ROLES[guid] in line, line
    # Each role is assigned, not only declared.
    for variable in ("eventHubsDataReceiver", "eventHubsDataSender", "storageBlobDataOwner",
                     "storageBlobDataContributor", "monitoringMetricsPublisher"):  # fmt: skip
        assert roles.text.count(f"roleDefinitions', {variable})") >= 1, variable


# --- The APIM policy -----------------------------------------------------------------------------


def policy(name: str) -> ET.Element:
    return ET.parse(APIM / name).getroot()


@pytest.mark.parametrize("path", sorted(APIM.glob("*.xml")), ids=lambda p: p.name)
def test_policy_files_are_well_formed_xml(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag in {"fragment", "policies"}


def emitted_keys() -> list[str]:
    (log,) = policy("chargeback-outbound.xml").iter("log-to-eventhub")
    return re.findall(r'new JProperty\("(\w+)"', log.text or "")


def test_the_policy_emits_exactly_the_v1_fields_in_contract_order() -> None:
    keys = emitted_keys()
    first_seen = list(dict.fromkeys(keys))
    assert first_seen == V1_FIELDS
    # The fallback message (when building the full one fails) carries the required fields.
    fallback = keys[len(V1_FIELDS) :]
    assert fallback == V1_REQUIRED


def test_the_contract_lists_the_same_fields() -> None:
    for candidate in (ROOT.parent / "shared" / "CONTRACTS.md", Path("/work/shared/CONTRACTS.md")):
        if candidate.is_file():
            break
    else:
        pytest.skip("shared/CONTRACTS.md is not beside the repository")
    section = candidate.read_text(encoding="utf-8").split("### 1a", 1)[1]
    example = section.split("```json", 1)[1].split("```", 1)[0]
    assert list(json.loads(example)) == V1_FIELDS


def test_the_policy_never_sends_keys_or_tokens() -> None:
    for name in ("chargeback-inbound.xml", "chargeback-outbound.xml"):
        text = (APIM / name).read_text(encoding="utf-8")
        code = re.sub(r"<!--.*?-->", "", text, flags=re.S)
        for needle in ("Subscription.Key", "PrimaryKey", "SecondaryKey", '"Authorization"',
                       "Ocp-Apim-Subscription-Key", '"api-key"'):  # fmt: skip
            assert needle not in code, f"{name}: {needle}"


def test_the_logger_the_policy_names_is_the_one_bicep_creates() -> None:
    (log,) = policy("chargeback-outbound.xml").iter("log-to-eventhub")
    assert MAIN.variable_text("apimLoggerName").strip() == f"'{log.get('logger-id')}'"
    assert "loggerName: apimLoggerName" in MAIN.module("apimChargeback").body
    assert "loggerType: 'azureEventHub'" in APIM_PART.text
    assert "identityClientId: identityClientId" in APIM_PART.text


def test_named_values_used_by_the_policy_are_created() -> None:
    used = set()
    for name in ("chargeback-inbound.xml", "chargeback-outbound.xml"):
        used |= set(re.findall(r"\{\{([\w-]+)\}\}", (APIM / name).read_text(encoding="utf-8")))
    assert used == set(APIM_PART.variable_keys("namedValues"))


def test_fragments_are_deployed_under_the_ids_the_sample_includes() -> None:
    sample = policy("api-policy.sample.xml")
    included = [e.get("fragment-id", "") for e in sample.iter("include-fragment")]
    deployed = dict(
        re.findall(
            r"name: '([\w-]+)'\n(?:.*\n){1,4}?\s*value: loadTextContent\('\.\./apim/([\w.-]+)'\)",
            APIM_PART.text,
        )
    )
    assert sorted(included) == sorted(deployed)
    for fragment_id, file in deployed.items():
        assert file == f"{fragment_id}.xml"
    assert "format: 'xml'" in APIM_PART.text  # the files are XML-escaped, not raw


def test_the_fragments_share_variables_with_each_other_and_the_sample() -> None:
    inbound = policy("chargeback-inbound.xml")
    sample = policy("api-policy.sample.xml")
    set_in_inbound = {e.get("name") for e in inbound.iter("set-variable")}
    set_in_sample = {e.get("name") for e in sample.iter("set-variable")}
    outbound_text = (APIM / "chargeback-outbound.xml").read_text(encoding="utf-8")
    read = set(re.findall(r'GetValueOrDefault\("(chargeback-[\w-]+)"', outbound_text))
    assert read <= set_in_inbound | set_in_sample
    # The validated token reaches the inbound fragment under the name it reads.
    (validate,) = sample.iter("validate-azure-ad-token")
    token_variable = validate.get("output-token-variable-name")
    inbound_text = (APIM / "chargeback-inbound.xml").read_text(encoding="utf-8")
    assert f'context.Variables["{token_variable}"]' in inbound_text
    assert re.search(r'"appid".*"azp"', inbound_text)


def test_the_policy_stays_under_the_event_hubs_message_limit() -> None:
    text = (APIM / "chargeback-outbound.xml").read_text(encoding="utf-8")
    (limit,) = re.findall(r"const int Limit = ([\d* -]+);", text)
    assert 0 < eval(limit) < 200 * 1024  # a constant expression from our own file
    assert "preserveContent: true" in text


# --- Deployment package --------------------------------------------------------------------------


def test_funcignore_keeps_dev_files_out_and_the_app_in() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".funcignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for excluded in ("tests/", "samples/", "infra/", "local.settings.json", ".venv/", "docs/"):
        assert excluded in patterns, excluded
    for needed in ("chargeback", "function_app.py", "host.json", "requirements.txt"):
        assert not any(p.rstrip("/") == needed for p in patterns), needed


def test_the_function_runs_on_the_python_and_runtime_the_tests_use() -> None:
    """Flex Consumption takes the Python version from functionAppConfig; the Functions runtime
    version from requirements.txt (runtime versioning, "Python 3.13+ changes"). Both must be
    what the tests run the Function in: this interpreter and the installed runtime package."""
    from importlib.metadata import version

    runtime = FUNCTION_APP.text.split("runtime: {", 1)[1].split("}", 1)[0]
    assert "name: 'python'" in runtime
    assert f"version: '{sys.version_info.major}.{sys.version_info.minor}'" in runtime
    pins = dict(
        line.split("==", 1)
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert pins["azure-functions-runtime"] == version("azure-functions-runtime")
    assert pins["azure-functions"] == version("azure-functions")
