// Event Hubs: the namespace, the hub APIM writes to, and the Function's own consumer group.
// Local (SAS) auth is off: APIM sends and the Function receives with managed identities.

param name string
param location string
param tags object = {}

@minValue(1)
@maxValue(40)
param capacity int = 1

param eventHubName string

@minValue(1)
@maxValue(32)
param partitionCount int

@minValue(1)
@maxValue(7)
param retentionDays int

param consumerGroupName string

@allowed(['Enabled', 'Disabled'])
param publicNetworkAccess string = 'Enabled'

// Standard, not Basic: Basic has only the $Default consumer group, and the Function must not
// share a consumer group (and its checkpoints) with any other reader.
resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: capacity
  }
  properties: {
    disableLocalAuth: true
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
    userMetadata: 'Azure Function chargeback processor; checkpoints live in its host storage.'
  }
}

output namespaceId string = namespace.id
output namespaceName string = namespace.name
// serviceBusEndpoint is https://<name>.servicebus.windows.net:443/ (another suffix in sovereign
// clouds); the trigger and the APIM logger want the bare host name.
output fullyQualifiedNamespace string = split(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':')[0]
output eventHubName string = hub.name
output consumerGroupName string = consumerGroup.name
