package scim

// Schema and message URNs.
const (
	SchemaUser            = "urn:ietf:params:scim:schemas:core:2.0:User"
	SchemaGroup           = "urn:ietf:params:scim:schemas:core:2.0:Group"
	SchemaEnterpriseUser  = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	SchemaConnectUser     = "urn:ietf:params:scim:schemas:extension:connect:2.0:User"
	SchemaConnectGroup    = "urn:ietf:params:scim:schemas:extension:connect:2.0:Group"
	SchemaListResponse    = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	SchemaSearchRequest   = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
	SchemaPatchOp         = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	SchemaError           = "urn:ietf:params:scim:api:messages:2.0:Error"
	SchemaChange          = "urn:ietf:params:scim:schemas:extension:connect:2.0:Change"
	SchemaServiceProvider = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	SchemaResourceType    = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	SchemaSchema          = "urn:ietf:params:scim:schemas:core:2.0:Schema"
)

// Group kinds carried in the Connect group extension.
const (
	KindAudience = "audience"
	KindCourse   = "course"
)
