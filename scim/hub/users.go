package hub

import (
	"context"
	"fmt"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store"
)

// SetPasswordHash stores a password hash (from password.Hash) for the user with
// that userName and writes an audit entry. store.ErrNotFound when no user has it.
func SetPasswordHash(ctx context.Context, st store.Store, actor, userName, hash string) error {
	u, err := st.UserByUserName(ctx, userName)
	if err != nil {
		return fmt.Errorf("find user %q: %w", userName, err)
	}
	_, err = st.UpdateUser(ctx, u.ID, 0, func(u *scim.User) error {
		if u.Connect == nil {
			u.Connect = &scim.ConnectUser{}
		}
		u.Connect.PasswordHash = hash
		u.Password = ""
		u.SetSchemas()
		return nil
	})
	if err != nil {
		return fmt.Errorf("set password of %q: %w", userName, err)
	}
	if err := st.Audit(ctx, store.AuditEntry{Actor: actor, Action: "user.set-password", Target: u.ID + " " + u.UserName}); err != nil {
		return fmt.Errorf("audit set password: %w", err)
	}
	return nil
}
