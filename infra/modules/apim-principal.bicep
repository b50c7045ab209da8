// Which identity an API Management service sends to Event Hubs as: a user-assigned identity
// attached to it, or, when none is given, its system-assigned identity (which must be on).

param apimName string

@description('Resource id of a user-assigned identity attached to the service; empty: system-assigned.')
param userAssignedIdentityResourceId string = ''

var useUserAssigned = !empty(userAssignedIdentityResourceId)
var idParts = split(userAssignedIdentityResourceId, '/')

resource apim 'Microsoft.ApiManagement/service@2024-05-01' existing = {
  name: apimName
}

// The identity may live in another resource group or subscription: /subscriptions/{2}/resourceGroups/{4}/...
resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = if (useUserAssigned) {
  name: useUserAssigned ? last(idParts) : 'unused'
  scope: resourceGroup(useUserAssigned ? idParts[2] : subscription().subscriptionId, useUserAssigned ? idParts[4] : resourceGroup().name)
}

output principalId string = useUserAssigned ? identity.properties.principalId : apim.identity.principalId
// The logger's identityClientId: a client id, or the literal SystemAssigned.
output clientId string = useUserAssigned ? identity.properties.clientId : 'SystemAssigned'
