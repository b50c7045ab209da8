// The processor: a Python 3.13 Function App on Flex Consumption, running as one user-assigned
// identity. Runtime, scale and the deployment package are set in functionAppConfig, not in app
// settings (Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION).

param name string
param planName string
param location string
param tags object = {}

param identityResourceId string
param identityClientId string

@description('Host storage: checkpoints, leases, the deployment package and the dead-letter container.')
param storageAccountName string
param deploymentContainerName string

param eventHubFullyQualifiedNamespace string
param eventHubName string
param eventHubConsumerGroupName string

@description('API Management\'s resource logs (its LLM logs): the hub of the second trigger; empty: no second trigger.')
param resourceLogsFullyQualifiedNamespace string = ''
param resourceLogsEventHubName string = ''
param resourceLogsConsumerGroupName string = ''

param appInsightsConnectionString string

@description('The processor\'s CHARGEBACK_* settings, built in main.bicep.')
param chargebackAppSettings object

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([2048, 4096])
param instanceMemoryMB int = 2048

@description('Subnet delegated to Microsoft.App/environments for virtual network integration; empty: none.')
param virtualNetworkSubnetId string = ''

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

// Identity-based host storage: AzureWebJobsStorage__* instead of a connection string.
var hostSettings = {
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
}

// The Event Hubs trigger: function_app.py names the connection EventHubConnection and reads the
// hub and consumer group from %EVENTHUB_NAME% and %EVENTHUB_CONSUMER_GROUP%.
var triggerSettings = {
  EventHubConnection__fullyQualifiedNamespace: eventHubFullyQualifiedNamespace
  EventHubConnection__credential: 'managedidentity'
  EventHubConnection__clientId: identityClientId
  EVENTHUB_NAME: eventHubName
  EVENTHUB_CONSUMER_GROUP: eventHubConsumerGroupName
}

// The second trigger: function_app.py declares it only when RESOURCE_LOGS_EVENTHUB_NAME is set,
// and reads the hub's namespace through ResourceLogsEventHubConnection, with the identity.
var resourceLogsTriggerSettings = {
  ResourceLogsEventHubConnection__fullyQualifiedNamespace: resourceLogsFullyQualifiedNamespace
  ResourceLogsEventHubConnection__credential: 'managedidentity'
  ResourceLogsEventHubConnection__clientId: identityClientId
  RESOURCE_LOGS_EVENTHUB_NAME: resourceLogsEventHubName
  RESOURCE_LOGS_EVENTHUB_CONSUMER_GROUP: resourceLogsConsumerGroupName
}

// Telemetry with Entra ID: the App Insights resource has local auth disabled, so both the host
// (APPLICATIONINSIGHTS_AUTHENTICATION_STRING) and the processor's exporter authenticate as the
// identity. The processor configures its own exporter, so the worker's OpenTelemetry
// integration stays off.
var telemetrySettings = {
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=${identityClientId}'
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'false'
}

// Dead letters go to a container of the host storage account, written with the identity.
var deadLetterSettings = {
  DeadLetterStorage__serviceUri: storage.properties.primaryEndpoints.blob
  DeadLetterStorage__clientId: identityClientId
}

var appSettings = union(hostSettings, triggerSettings, resourceLogsTriggerSettings, telemetrySettings, deadLetterSettings, chargebackAppSettings)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityResourceId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      appSettings: [
        for setting in items(appSettings): {
          name: setting.key
          value: setting.value
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityResourceId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      // Python 3.13: the version the tests run the Functions runtime on (azure-functions-runtime,
      // pinned in requirements.txt: "Python 3.13+ changes", runtime versioning). Flex Consumption
      // runs 3.13 (Azure Functions supported languages: Python 3.13 GA).
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
  }
}

output name string = site.name
output id string = site.id
