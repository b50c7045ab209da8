// The chargeback part of an API Management service: the Event Hubs logger (managed identity,
// no connection string), the named values the policy reads, and the two policy fragments to
// include in the Azure OpenAI API's policy (see infra/apim/api-policy.sample.xml).
// Deployed in the service's own resource group, which may not be the chargeback one.

param apimName string

@description('Logger id; the outbound fragment names it in log-to-eventhub logger-id.')
param loggerName string

param eventHubFullyQualifiedNamespace string
param eventHubName string

@description('Client id of the user-assigned identity APIM sends as, or SystemAssigned.')
param identityClientId string

param includeStreamUsage bool = true
param readStreamBodies bool = true

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
var namedValues = {
  'chargeback-include-stream-usage': string(includeStreamUsage)
  'chargeback-read-stream-bodies': string(readStreamBodies)
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

output loggerId string = logger.id
