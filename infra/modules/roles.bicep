// Every role assignment of the deployment, each scoped as narrowly as the service allows.
// Built-in role definition ids are the same in every tenant; the name of each is beside it.

param functionPrincipalId string

@description('Principal APIM sends as; empty when no APIM part is deployed.')
param apimPrincipalId string = ''

@description('The person running azd, for smoke tests with `python -m chargeback send`; empty: none.')
param developerPrincipalId string = ''

param eventHubNamespaceName string
param eventHubName string

@description('The resource-logs namespace and hub (API Management\'s LLM logs); empty: none deployed.')
param resourceLogsNamespaceName string = ''
param resourceLogsEventHubName string = ''
param storageAccountName string
param deadLetterContainerName string
param appInsightsName string

var eventHubsDataReceiver = 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde' // Azure Event Hubs Data Receiver
var eventHubsDataSender = '2b629674-e913-4c01-ae53-ef4638d8f975' // Azure Event Hubs Data Sender
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = {
  name: eventHubNamespaceName
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: namespace
  name: eventHubName
}

var readsResourceLogs = !empty(resourceLogsNamespaceName) && !empty(resourceLogsEventHubName)

resource resourceLogsNamespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = if (readsResourceLogs) {
  name: readsResourceLogs ? resourceLogsNamespaceName : 'unused'
}

resource resourceLogsHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = if (readsResourceLogs) {
  parent: resourceLogsNamespace
  name: readsResourceLogs ? resourceLogsEventHubName : 'unused'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deadLetterContainerName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Function: Azure Event Hubs Data Receiver on the hub it reads.
resource functionReceives 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hub.id, functionPrincipalId, eventHubsDataReceiver)
  scope: hub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventHubsDataReceiver)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Function: Azure Event Hubs Data Receiver on the resource-logs hub (API Management's LLM logs).
// Azure Monitor sends there with the namespace's SAS rule, so no sender role is assigned.
resource functionReceivesResourceLogs 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (readsResourceLogs) {
  name: guid(resourceLogsHub.id, functionPrincipalId, eventHubsDataReceiver)
  scope: resourceLogsHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventHubsDataReceiver)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Function: Storage Blob Data Owner on its host storage (AzureWebJobsStorage with an identity
// and the Flex Consumption deployment package need more than Contributor).
resource functionOwnsHostStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Function: Storage Blob Data Contributor on the dead-letter container. The Owner role above
// already covers it while both share one account; this keeps dead letters working if the
// container moves to an account of its own.
resource functionWritesDeadLetters 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, functionPrincipalId, storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Function: Monitoring Metrics Publisher on Application Insights (ingestion with Entra ID).
resource functionPublishesTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionPrincipalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// APIM: Azure Event Hubs Data Sender on the hub, for its log-to-eventhub logger.
resource apimSends 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(apimPrincipalId)) {
  name: guid(hub.id, apimPrincipalId, eventHubsDataSender)
  scope: hub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventHubsDataSender)
    principalId: apimPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Developer: Azure Event Hubs Data Sender on the hub, for smoke tests from a workstation.
resource developerSends 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(developerPrincipalId)) {
  name: guid(hub.id, developerPrincipalId, eventHubsDataSender)
  scope: hub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventHubsDataSender)
    principalId: developerPrincipalId
    principalType: 'User'
  }
}
