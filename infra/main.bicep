// Chargeback for Azure OpenAI behind API Management: everything `azd up` creates.
//
//   APIM --log-to-eventhub (managed identity)--> Event Hubs --trigger--> Function (Flex Consumption)
//   APIM --diagnostic setting (GatewayLlmLogs, GatewayLogs)--> resource-logs Event Hubs --trigger--^
//        --custom events (Entra ID auth)--> Application Insights --> Log Analytics (KQL in queries/)
//
// Every connection is identity-based: no keys or connection strings with secrets are stored or
// passed. The one exception Azure imposes: a diagnostic setting streams to Event Hubs only with
// a SAS rule, so the resource-logs namespace has one, used by Azure Monitor alone
// (modules/resource-logs.bicep). Role assignments are all in modules/roles.bicep.
targetScope = 'subscription'

// --- azd --------------------------------------------------------------------------------------
@minLength(1)
@maxLength(64)
@description('azd environment name; used to name and tag every resource.')
param environmentName string

@minLength(1)
@description('Region of every resource. It must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
param location string

@description('Resource group to create; default rg-<environmentName>.')
param resourceGroupName string = ''

@description('Object id of the person running azd, granted Data Sender on the hub for smoke tests with `python -m chargeback send`. Empty grants nothing.')
param principalId string = ''

// --- Event Hubs -------------------------------------------------------------------------------
@description('Partitions of the gateway hub. The Function scales out to at most one instance per partition; it cannot be changed later on the Standard tier.')
@minValue(1)
@maxValue(32)
param eventHubPartitionCount int = 4

@description('Days Event Hubs keeps gateway messages, so a stopped Function can catch up (Standard tier: 1 to 7).')
@minValue(1)
@maxValue(7)
param eventHubRetentionDays int = 3

@description('Throughput units of the Standard namespace.')
@minValue(1)
@maxValue(40)
param eventHubCapacity int = 1

param eventHubName string = 'gateway-messages'
param eventHubConsumerGroupName string = 'chargeback-processor'

// --- Function App ----------------------------------------------------------------------------
@description('Upper bound of Flex Consumption instances.')
@minValue(40)
@maxValue(1000)
param functionMaximumInstanceCount int = 40

@allowed([2048, 4096])
param functionInstanceMemoryMB int = 2048

// --- Chargeback settings (app settings read by chargeback/settings.py) ---------------------------
@description('Deployment name -> model name, for deployments not named after their model.')
param deploymentModels object = {}

@allowed(['high', 'low', 'skip'])
@description('How an image given by URL is billed when its size cannot be known offline.')
param imageUrlPolicy string = 'high'

@description('Model-name prefix -> tokenizer file inside the deployed package (a tokenizer.json, or a tiktoken ranks file), for families with no OpenAI tokenizer; without one their calls are estimated with o200k_base times a family factor and flagged tokenizer-approximate.')
param tokenizers object = {}

@description('Model-name prefixes whose calls are dead-lettered when their tokens must be estimated, instead of billed on an approximation.')
param unestimatedModels array = []

@description('Path of the prices file inside the deployed package (e.g. config/prices.json); empty: no cost is computed.')
param pricesFile string = ''

@description('Path of the identity map inside the deployed package; empty: identities are reported as the gateway sent them.')
param identityMapFile string = ''

@description('Which identity pays, first found wins: a comma-separated list of appId, subscriptionId, productId.')
param identityOrder string = 'appId,subscriptionId,productId'

@description('Deployments on provisioned throughput (PTU), billed by reservation rather than by token.')
param provisionedDeployments array = []

@description('Deployment name -> deployment type (Azure SKU name: GlobalStandard, DataZoneStandard, Standard, GlobalBatch, DataZoneBatch, or a provisioned one), which prices its calls bill at. A deployment not named is GlobalStandard.')
param deploymentTypes object = {}

@description('Messages larger than this are dead-lettered unread.')
param maxMessageBytes int = 1048576

@description('Seconds the exporter may spend on one flush (a decimal number, as a string).')
param exportTimeoutSeconds string = '30'

param cloudRoleName string = 'chargeback-processor'
param deadLetterContainerName string = 'chargeback-deadletter'

// --- Monitoring -------------------------------------------------------------------------------
@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

// --- API Management ---------------------------------------------------------------------------
@description('Name of an existing API Management service to connect; empty, and createApim false: no APIM part is deployed (send messages with `python -m chargeback send`).')
param apimName string = ''

@description('Resource group of the existing API Management service; default: the one created here.')
param apimResourceGroupName string = ''

@description('Resource id of a user-assigned identity attached to the existing APIM, used by its logger. Empty: the service\'s system-assigned identity, which must be turned on.')
param apimUserAssignedIdentityResourceId string = ''

@description('Create a new API Management service (with its own user-assigned identity) instead of using an existing one.')
param createApim bool = false

@allowed(['Developer', 'BasicV2', 'StandardV2', 'Basic', 'Standard', 'Premium'])
param apimSku string = 'Developer'

param apimPublisherEmail string = 'noreply@contoso.com'
param apimPublisherName string = 'Chargeback'

@description('Adds stream_options.include_usage to streaming chat requests on api-versions that accept it (2024-09-01-preview and later, and the v1 API), so the last chunk carries usage (APIM named value chargeback-include-stream-usage). It only matters while readStreamBodies is on.')
param includeStreamUsage bool = true

@description('Read streamed response bodies in APIM. Off by default: reading a stream makes APIM buffer it, so clients get the answer all at once; streamed calls are billed from API Management\'s LLM logs instead (see docs/deploy.md). Named value chargeback-read-stream-bodies.')
param readStreamBodies bool = false

@description('Send API Management\'s GatewayLlmLogs and GatewayLogs to a resource-logs event hub: the token counts of every call, streamed ones included, without buffering. See docs/llm-logs.md.')
param enableGatewayLlmLogs bool = true

@description('Id (name) of the Azure OpenAI API in API Management whose LLM logging is turned on. Empty: LLM logging is set on the service-wide Azure Monitor diagnostic, for every API (it replaces that diagnostic\'s settings).')
param apimOpenAiApiName string = ''

@description('Also log prompt and completion text in the LLM logs. Off: usage only. Prompts and completions are personal data: turn this on only with a reason and a retention plan.')
param logLlmMessages bool = false

@description('Region of the resource-logs Event Hubs namespace: it must be the API Management service\'s region (a diagnostic setting streams only to a namespace in the region of the resource). Empty: the deployment\'s location.')
param resourceLogsLocation string = ''

// --- Network ----------------------------------------------------------------------------------
@description('Put Event Hubs and storage behind private endpoints in a new virtual network, and integrate the Function with it.')
param enablePrivateEndpoints bool = false

@allowed(['Enabled', 'Disabled'])
@description('Public network access of Event Hubs and storage. Disabled needs enablePrivateEndpoints, an APIM that reaches the virtual network, and deploying from inside it.')
param publicNetworkAccess string = 'Enabled'

param vnetAddressPrefix string = '10.60.0.0/24'

// ----------------------------------------------------------------------------------------------
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = 'func-${resourceToken}'
// Flex Consumption keeps the deployed package in a blob container of the host storage account.
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'
var apimLoggerName = 'chargeback-eventhub'
var connectExistingApim = !empty(apimName) && !createApim
var deployApimPart = connectExistingApim || createApim
var apimRg = createApim || empty(apimResourceGroupName) ? rg.name : apimResourceGroupName
// API Management's LLM logs reach the Function through a namespace of their own (resource-logs.bicep).
var deployResourceLogs = deployApimPart && enableGatewayLlmLogs

// The processor's own settings; the Function module adds the platform and binding settings.
// tests/test_infra.py checks that these keys are exactly the ones chargeback/settings.py reads.
var chargebackAppSettings = {
  CHARGEBACK_CLOUD_ROLE_NAME: cloudRoleName
  CHARGEBACK_EXPORT_TIMEOUT_SECONDS: exportTimeoutSeconds
  CHARGEBACK_DEPLOYMENT_MODELS: string(deploymentModels)
  CHARGEBACK_IMAGE_URL_POLICY: imageUrlPolicy
  CHARGEBACK_TOKENIZERS: string(tokenizers)
  CHARGEBACK_UNESTIMATED_MODELS: join(unestimatedModels, ',')
  CHARGEBACK_IDENTITY_ORDER: identityOrder
  CHARGEBACK_PROVISIONED_DEPLOYMENTS: join(provisionedDeployments, ',')
  CHARGEBACK_DEPLOYMENT_TYPES: string(deploymentTypes)
  CHARGEBACK_MAX_MESSAGE_BYTES: string(maxMessageBytes)
  CHARGEBACK_DEADLETTER_CONTAINER: deadLetterContainerName
}
// Optional file settings are set only when given: an empty path is not "no file".
var pricesFileSetting = empty(pricesFile) ? {} : {
  CHARGEBACK_PRICES_FILE: pricesFile
}
var identityMapFileSetting = empty(identityMapFile) ? {} : {
  CHARGEBACK_IDENTITY_MAP_FILE: identityMapFile
}

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

// --- Identity (AVM) ---------------------------------------------------------------------------
// One user-assigned identity for the Function: host storage, trigger, dead letters, telemetry.
module functionIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  scope: rg
  name: 'function-identity'
  params: {
    name: 'id-func-${resourceToken}'
    location: location
    tags: tags
  }
}

// --- Monitoring (AVM) -------------------------------------------------------------------------
module logAnalytics 'br/public:avm/res/operational-insights/workspace:0.11.1' = {
  scope: rg
  name: 'log-analytics'
  params: {
    name: 'log-${resourceToken}'
    location: location
    tags: tags
    dataRetention: logRetentionDays
  }
}

// Local auth off: ingestion needs an Entra ID token, so a leaked connection string cannot
// write fake chargeback events. The Function sends with its identity
// (APPLICATIONINSIGHTS_AUTHENTICATION_STRING and Monitoring Metrics Publisher).
module appInsights 'br/public:avm/res/insights/component:0.6.0' = {
  scope: rg
  name: 'app-insights'
  params: {
    name: 'appi-${resourceToken}'
    location: location
    tags: tags
    kind: 'web'
    applicationType: 'web'
    workspaceResourceId: logAnalytics.outputs.resourceId
    disableLocalAuth: true
  }
}

// The chargeback workbook (cost per business unit, tokens per model, top applications, the
// estimated share), built from queries/ by infra/workbooks/make_workbook.py.
module workbook 'workbooks/workbook.bicep' = {
  scope: rg
  name: 'chargeback-workbook'
  params: {
    applicationInsightsId: appInsights.outputs.resourceId
    logAnalyticsWorkspaceId: logAnalytics.outputs.resourceId
    location: location
  }
}

// --- Data path --------------------------------------------------------------------------------
module eventHubs 'modules/eventhubs.bicep' = {
  scope: rg
  name: 'event-hubs'
  params: {
    name: 'evhns-${resourceToken}'
    location: location
    tags: tags
    capacity: eventHubCapacity
    eventHubName: eventHubName
    partitionCount: eventHubPartitionCount
    retentionDays: eventHubRetentionDays
    consumerGroupName: eventHubConsumerGroupName
    publicNetworkAccess: publicNetworkAccess
  }
}

module storage 'modules/storage.bicep' = {
  scope: rg
  name: 'storage'
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    containerNames: [deploymentContainerName, deadLetterContainerName]
    publicNetworkAccess: publicNetworkAccess
  }
}

// Where API Management's diagnostic setting streams GatewayLlmLogs and GatewayLogs (CONTRACTS §1d).
module resourceLogs 'modules/resource-logs.bicep' = if (deployResourceLogs) {
  scope: rg
  name: 'resource-logs'
  params: {
    name: 'evhns-logs-${resourceToken}'
    location: empty(resourceLogsLocation) ? location : resourceLogsLocation
    tags: tags
    consumerGroupName: eventHubConsumerGroupName
    retentionDays: eventHubRetentionDays
    publicNetworkAccess: publicNetworkAccess
  }
}

module network 'modules/network.bicep' = if (enablePrivateEndpoints) {
  scope: rg
  name: 'network'
  params: {
    name: 'vnet-${resourceToken}'
    location: location
    tags: tags
    addressPrefix: vnetAddressPrefix
    eventHubNamespaceId: eventHubs.outputs.namespaceId
    storageAccountId: storage.outputs.id
  }
}

module functionApp 'modules/function-app.bicep' = {
  scope: rg
  name: 'function-app'
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: union(tags, { 'azd-service-name': 'processor' })
    identityResourceId: functionIdentity.outputs.resourceId
    identityClientId: functionIdentity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    eventHubFullyQualifiedNamespace: eventHubs.outputs.fullyQualifiedNamespace
    eventHubName: eventHubs.outputs.eventHubName
    eventHubConsumerGroupName: eventHubs.outputs.consumerGroupName
    resourceLogsFullyQualifiedNamespace: deployResourceLogs ? resourceLogs.outputs.fullyQualifiedNamespace : ''
    resourceLogsEventHubName: deployResourceLogs ? resourceLogs.outputs.eventHubName : ''
    resourceLogsConsumerGroupName: deployResourceLogs ? resourceLogs.outputs.consumerGroupName : ''
    appInsightsConnectionString: appInsights.outputs.connectionString
    chargebackAppSettings: union(chargebackAppSettings, pricesFileSetting, identityMapFileSetting)
    maximumInstanceCount: functionMaximumInstanceCount
    instanceMemoryMB: functionInstanceMemoryMB
    virtualNetworkSubnetId: enablePrivateEndpoints ? network.outputs.functionSubnetId : ''
  }
}

// --- API Management -----------------------------------------------------------------------------
module apimIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = if (createApim) {
  scope: rg
  name: 'apim-identity'
  params: {
    name: 'id-apim-${resourceToken}'
    location: location
    tags: tags
  }
}

module apim 'modules/apim.bicep' = if (createApim) {
  scope: rg
  name: 'apim'
  params: {
    name: 'apim-${resourceToken}'
    location: location
    tags: tags
    sku: apimSku
    publisherEmail: apimPublisherEmail
    publisherName: apimPublisherName
    identityResourceId: createApim ? apimIdentity.outputs.resourceId : ''
  }
}

// Who APIM sends as: the identity created with it, a given user-assigned one, or its own.
module apimPrincipal 'modules/apim-principal.bicep' = if (deployApimPart) {
  scope: resourceGroup(apimRg)
  name: 'apim-principal'
  params: {
    apimName: createApim ? apim.outputs.name : apimName
    userAssignedIdentityResourceId: createApim ? apimIdentity.outputs.resourceId : apimUserAssignedIdentityResourceId
  }
}

module roles 'modules/roles.bicep' = {
  scope: rg
  name: 'role-assignments'
  params: {
    functionPrincipalId: functionIdentity.outputs.principalId
    apimPrincipalId: deployApimPart ? apimPrincipal.outputs.principalId : ''
    developerPrincipalId: principalId
    eventHubNamespaceName: eventHubs.outputs.namespaceName
    eventHubName: eventHubs.outputs.eventHubName
    resourceLogsNamespaceName: deployResourceLogs ? resourceLogs.outputs.namespaceName : ''
    resourceLogsEventHubName: deployResourceLogs ? resourceLogs.outputs.eventHubName : ''
    storageAccountName: storage.outputs.name
    deadLetterContainerName: deadLetterContainerName
    appInsightsName: appInsights.outputs.name
  }
}

module apimChargeback 'modules/apim-chargeback.bicep' = if (deployApimPart) {
  scope: resourceGroup(apimRg)
  name: 'apim-chargeback'
  params: {
    apimName: createApim ? apim.outputs.name : apimName
    loggerName: apimLoggerName
    eventHubFullyQualifiedNamespace: eventHubs.outputs.fullyQualifiedNamespace
    eventHubName: eventHubs.outputs.eventHubName
    identityClientId: deployApimPart ? apimPrincipal.outputs.clientId : ''
    includeStreamUsage: includeStreamUsage
    readStreamBodies: readStreamBodies
    resourceLogsAuthorizationRuleId: deployResourceLogs ? resourceLogs.outputs.authorizationRuleId : ''
    resourceLogsEventHubName: deployResourceLogs ? resourceLogs.outputs.eventHubName : ''
    openAiApiName: apimOpenAiApiName
    logLlmMessages: logLlmMessages
  }
  // APIM checks it can reach the hub when the logger is created: grant Data Sender first.
  dependsOn: [roles]
}

// --- Outputs (azd stores them in .azure/<env>/.env) --------------------------------------------
output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output EVENTHUB_NAME string = eventHubs.outputs.eventHubName
output EVENTHUB_CONSUMER_GROUP string = eventHubs.outputs.consumerGroupName
output EVENTHUB_SEND_NAMESPACE string = eventHubs.outputs.fullyQualifiedNamespace
output APPLICATIONINSIGHTS_NAME string = appInsights.outputs.name
output LOG_ANALYTICS_WORKSPACE_ID string = logAnalytics.outputs.resourceId
output APIM_LOGGER_NAME string = deployApimPart ? apimLoggerName : ''
// The resource-logs hub the Function's second trigger reads (docs/llm-logs.md).
output RESOURCE_LOGS_EVENTHUB_NAMESPACE string = deployResourceLogs ? resourceLogs.outputs.fullyQualifiedNamespace : ''
output RESOURCE_LOGS_EVENTHUB_NAME string = deployResourceLogs ? resourceLogs.outputs.eventHubName : ''
output RESOURCE_LOGS_CONSUMER_GROUP string = deployResourceLogs ? resourceLogs.outputs.consumerGroupName : ''
