// A new API Management service, for a subscription that has none yet. It sends to Event Hubs
// as its user-assigned identity. Developer takes 30-45 minutes to create; v2 tiers are quicker.

param name string
param location string
param tags object = {}

@allowed(['Developer', 'BasicV2', 'StandardV2', 'Basic', 'Standard', 'Premium'])
param sku string = 'Developer'

param publisherEmail string
param publisherName string

param identityResourceId string

resource apim 'Microsoft.ApiManagement/service@2024-05-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
    capacity: 1
  }
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityResourceId}': {}
    }
  }
  properties: {
    publisherEmail: publisherEmail
    publisherName: publisherName
  }
}

output name string = apim.name
output gatewayUrl string = apim.properties.gatewayUrl
