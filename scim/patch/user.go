package patch

import "github.com/connectsso/connect/scim"

// ApplyUser applies ops to u in order. On success *u is replaced by the patched
// user (Schemas recomputed from the extensions present); on any error u is left
// unchanged. Every client error is a *scim.Error (400 with scimType invalidPath,
// invalidFilter, invalidValue, invalidSyntax, noTarget or mutability). A clear
// password set by the request stays in u.Password for the caller to hash.
func ApplyUser(u *scim.User, ops []Operation) error {
	if len(ops) > MaxOperations {
		return scim.BadRequest(scim.ErrTypeInvalidSyntax, "at most %d operations per request", MaxOperations)
	}
	doc, err := toDoc(u)
	if err != nil {
		return err
	}
	e := &engine{rt: scim.UserResourceType, doc: doc}
	for i, op := range ops {
		if err := e.apply(op); err != nil {
			return opError(i, err)
		}
	}
	if err := e.finish(); err != nil {
		return err
	}
	var out scim.User
	if err := fromDoc(e.doc, &out); err != nil {
		return err
	}
	out.SetSchemas()
	*u = out
	return nil
}
