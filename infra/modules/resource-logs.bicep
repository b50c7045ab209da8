// The event hub API Management's diagnostic setting streams GatewayLlmLogs and GatewayLogs to
// (CONTRACTS §1d): a namespace of its own, because Azure Monitor can only stream with a shared
// access (SAS) rule.
//
// "The shared access policy for the namespace defines the permissions that the streaming
// mechanism has. Streaming to Event Hubs requires Manage, Send, and Listen permissions."
// (Diagnostic settings in Azure Monitor, destination limitations:
// learn.microsoft.com/azure/azure-monitor/essentials/diagnostic-settings#destination-limitations;
// MicrosoftDocs/azure-docs#119932 asks the page to say that local auth must be on for it.)
// A diagnostic setting names an authorization rule and has no managed-identity option, so SAS
// must be on for this namespace. Keeping it apart leaves the gateway namespace (eventhubs.bicep)
// identity-only: the v1 messages still cannot be sent with any key.
//
// The rule's key never leaves Azure: nothing here lists it, only the rule's resource id goes to
// the diagnostic setting (modules/apim-chargeback.bicep). The Function reads with its identity
// (Azure Event Hubs Data Receiver, modules/roles.bicep).

param name string
param location string
param tags object = {}

param eventHubName string = 'apim-resource-logs'
param consumerGroupName string = 'chargeback-processor'

@minValue(1)
@maxValue(32)
param partitionCount int = 2

@minValue(1)
@maxValue(7)
param retentionDays int = 3

@allowed(['Enabled', 'Disabled'])
param publicNetworkAccess string = 'Enabled'

// Standard: the Function's own consumer group (Basic has only $Default).
resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: 1
  }
  properties: {
    // Azure Monitor's streaming signs with the SAS rule below (see the top of this file).
    disableLocalAuth: false
    minimumTlsVersion: '1.2'
    publicNetworkAccess: publicNetworkAccess
  }
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: eventHubName
  properties: {
    partitionCount: partitionCount
    messageRetentionInDays: retentionDays
  }
}

resource consumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: hub
  name: consumerGroupName
  properties: {
    userMetadata: 'Azure Function chargeback processor: API Management resource logs.'
  }
}

// The one SAS rule, for Azure Monitor's diagnostic setting only: the rights the documentation
// requires for streaming, on this namespace alone.
resource azureMonitorRule 'Microsoft.EventHub/namespaces/authorizationRules@2024-01-01' = {
  parent: namespace
  name: 'azure-monitor-diagnostic-settings'
  properties: {
    rights: ['Manage', 'Send', 'Listen']
  }
}

output namespaceName string = namespace.name
output fullyQualifiedNamespace string = split(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':')[0]
output eventHubName string = hub.name
output consumerGroupName string = consumerGroup.name
// A resource id, not a key: the diagnostic setting resolves the key inside Azure.
output authorizationRuleId string = azureMonitorRule.id
