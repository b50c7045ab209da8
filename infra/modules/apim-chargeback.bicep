// The chargeback part of an API Management service: the Event Hubs logger (managed identity,
// no connection string), the named values the policy reads, the two policy fragments to
// include in the Azure OpenAI API's policy (see infra/apim/api-policy.sample.xml), and the LLM
// logs: LLM logging on the Azure Monitor diagnostic, and a diagnostic setting that streams
// GatewayLlmLogs and GatewayLogs to the resource-logs event hub (docs/llm-logs.md).
// Deployed in the service's own resource group, which may not be the chargeback one.

param apimName string

@description('Logger id; the outbound fragment names it in log-to-eventhub logger-id.')
param loggerName string

param eventHubFullyQualifiedNamespace string
param eventHubName string

@description('Client id of the user-assigned identity APIM sends as, or SystemAssigned.')
param identityClientId string

param includeStreamUsage bool = true
param readStreamBodies bool = false

@description('Resource id of the resource-logs namespace\'s authorization rule (modules/resource-logs.bicep); empty: no diagnostic setting, no LLM logging.')
param resourceLogsAuthorizationRuleId string = ''
param resourceLogsEventHubName string = ''

@description('Id of the Azure OpenAI API; empty: LLM logging on the service-wide Azure Monitor diagnostic.')
param openAiApiName string = ''

@description('Log prompt and completion text too; off: token usage only.')
param logLlmMessages bool = false

@description('Largest prompt or completion logged, in bytes, when logLlmMessages is on.')
@minValue(0)
@maxValue(262144)
param llmMessageMaxBytes int = 32768

@description('Request header that names the business unit to bill.')
param businessUnitHeader string = 'x-business-unit'

@description('Request header that names the end user, when the token does not.')
param endUserHeader string = 'x-end-user'

resource apim 'Microsoft.ApiManagement/service@2024-05-01' existing = {
  name: apimName
}

resource logger 'Microsoft.ApiManagement/service/loggers@2024-05-01' = {
  parent: apim
  name: loggerName
  properties: {
    loggerType: 'azureEventHub'
    description: 'Chargeback: one v1 gateway message per Azure OpenAI call'
    credentials: {
      endpointAddress: eventHubFullyQualifiedNamespace
      identityClientId: identityClientId
      name: eventHubName
    }
  }
}

// Policies refer to named values by display name, {{like-this}}; name and display name match.
// Booleans are written out: ARM's string() of a bool is 'True'/'False' (capitalised), and the
// policies compare with "true" (they also ignore case, so a hand-edited value still works).
var namedValues = {
  'chargeback-include-stream-usage': includeStreamUsage ? 'true' : 'false'
  'chargeback-read-stream-bodies': readStreamBodies ? 'true' : 'false'
  'chargeback-business-unit-header': businessUnitHeader
  'chargeback-end-user-header': endUserHeader
}

resource values 'Microsoft.ApiManagement/service/namedValues@2024-05-01' = [
  for item in items(namedValues): {
    parent: apim
    name: item.key
    properties: {
      displayName: item.key
      value: item.value
      secret: false
    }
  }
]

// "xml" format: the files are well-formed XML with escaped expressions (tests/test_infra.py
// parses them), not the raw form the portal's editor accepts.
resource inboundFragment 'Microsoft.ApiManagement/service/policyFragments@2024-05-01' = {
  parent: apim
  name: 'chargeback-inbound'
  properties: {
    description: 'Chargeback: remember the request body and caller; ask streams for usage'
    format: 'xml'
    value: loadTextContent('../apim/chargeback-inbound.xml')
  }
  dependsOn: [values]
}

resource outboundFragment 'Microsoft.ApiManagement/service/policyFragments@2024-05-01' = {
  parent: apim
  name: 'chargeback-outbound'
  properties: {
    description: 'Chargeback: send the v1 gateway message to Event Hubs'
    format: 'xml'
    value: loadTextContent('../apim/chargeback-outbound.xml')
  }
  dependsOn: [values, logger]
}

// --- LLM logs (CONTRACTS §1d) ------------------------------------------------------------------
var streamLlmLogs = !empty(resourceLogsAuthorizationRuleId)

// "Log token usage, prompts, and completions for LLM APIs"
// (learn.microsoft.com/azure/api-management/api-management-howto-llm-logs): LLM logging is a
// setting of the Azure Monitor diagnostic (largeLanguageModel), service-wide or per API. Usage is
// always logged once logs are enabled; prompts and completions only with requests/responses,
// whose only message type is 'all' (LlmMessageLogTypes), so usage-only leaves them out.
var llmMessages = {
  messages: 'all'
  maxSizeInBytes: llmMessageMaxBytes
}
var usageLogging = {
  logs: 'enabled'
}
var messageLogging = logLlmMessages ? {
  requests: llmMessages
  responses: llmMessages
} : {}
var largeLanguageModel = union(usageLogging, messageLogging)

// No body and no header is logged: logging the response body of a server-sent-events API makes
// API Management buffer it ("Configure API for server-sent events", avoid logging bodies), and
// bodies would put prompts in the logs. Every call is logged: sampling would drop billable calls.
var azureMonitorDiagnostic = {
  loggerId: azureMonitorLogger.id
  alwaysLog: 'allErrors'
  logClientIp: true
  verbosity: 'information'
  sampling: {
    samplingType: 'fixed'
    percentage: 100
  }
  frontend: {
    request: {
      headers: []
      body: {
        bytes: 0
      }
    }
    response: {
      headers: []
      body: {
        bytes: 0
      }
    }
  }
  backend: {
    request: {
      headers: []
      body: {
        bytes: 0
      }
    }
    response: {
      headers: []
      body: {
        bytes: 0
      }
    }
  }
  largeLanguageModel: largeLanguageModel
}

// The built-in Azure Monitor logger: gateway logs go to the diagnostic settings through it.
resource azureMonitorLogger 'Microsoft.ApiManagement/service/loggers@2024-06-01-preview' = if (streamLlmLogs) {
  parent: apim
  name: 'azuremonitor'
  properties: {
    loggerType: 'azureMonitor'
    isBuffered: false
  }
}

resource openAiApi 'Microsoft.ApiManagement/service/apis@2024-06-01-preview' existing = if (streamLlmLogs && !empty(openAiApiName)) {
  parent: apim
  name: empty(openAiApiName) ? 'unused' : openAiApiName
}

resource apiDiagnostic 'Microsoft.ApiManagement/service/apis/diagnostics@2024-06-01-preview' = if (streamLlmLogs && !empty(openAiApiName)) {
  parent: openAiApi
  name: 'azuremonitor'
  properties: azureMonitorDiagnostic
}

resource serviceDiagnostic 'Microsoft.ApiManagement/service/diagnostics@2024-06-01-preview' = if (streamLlmLogs && empty(openAiApiName)) {
  parent: apim
  name: 'azuremonitor'
  properties: azureMonitorDiagnostic
}

// The two categories chargeback reads, to the resource-logs hub ({"records": [...]} messages).
resource resourceLogsToEventHub 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (streamLlmLogs) {
  name: 'chargeback-llm-logs'
  scope: apim
  properties: {
    eventHubAuthorizationRuleId: resourceLogsAuthorizationRuleId
    eventHubName: resourceLogsEventHubName
    logs: [
      {
        category: 'GatewayLlmLogs'
        enabled: true
      }
      {
        category: 'GatewayLogs'
        enabled: true
      }
    ]
  }
}

output loggerId string = logger.id
