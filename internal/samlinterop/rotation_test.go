package samlinterop

import (
	"testing"
	"time"
)

// loginAt logs in as user through an SP already registered (a gosaml2 goSP or
// a Python SP, both answering JSON) and returns the SP's verdict.
func loginAt(tb testing.TB, spBase, user, password string) spResult {
	tb.Helper()
	return loginWith(tb, newBrowser(tb), spBase, user, password)
}

// TestKeyRotation: a signing-key rollover with `connect hub keys rotate
// --overlap` as SPs of other implementations see it. During the overlap the
// metadata lists the current and the next certificate, and an SP that still
// holds the metadata of before the rotation (gosaml2) keeps working. Once the
// overlap ends the next key signs: SPs that fetched the metadata during the
// overlap (gosaml2, python3-onelogin-saml2 with its x509certMulti, and
// python3-lasso) keep working, and the one that never refreshed is refused,
// which shows the key did change.
func TestKeyRotation(t *testing.T) {
	h := startHub(t)
	u := h.createUser(t, ada())
	stale := startGoSP(t, h)
	h.AddSP(t, writeFile(t, t.TempDir(), "stale.xml", stale.metadata(t, false)))
	if res := loginAt(t, stale.Base, u.UserName, u.Password); !res.OK {
		t.Fatalf("before the rotation: %v", res.Errors)
	}
	_, before := parseIdPMetadata(t, fetch(t, h.MetadataURL()))
	if len(before) != 1 {
		t.Fatalf("before the rotation the metadata lists %d signing certificates, want 1", len(before))
	}

	const overlap = 12 * time.Second // ample for the steps below on a loaded 2-core CI machine
	rotated := time.Now()
	h.cli(t, "", "keys", "rotate", "--overlap", overlap.String(), "--force")
	// A running hub re-reads its keys every 30 s; a restart reads them now.
	h.restart(t)

	_, during := parseIdPMetadata(t, fetch(t, h.MetadataURL()))
	if len(during) != 2 || !during[0].Equal(before[0]) {
		t.Fatalf("during the overlap the metadata should list the current certificate, then the next; got %d certificates", len(during))
	}
	if res := loginAt(t, stale.Base, u.UserName, u.Password); !res.OK {
		t.Errorf("during the overlap, an SP holding the old metadata was refused: %v", res.Errors)
	}
	fresh := startGoSP(t, h)
	h.AddSP(t, writeFile(t, t.TempDir(), "fresh.xml", fresh.metadata(t, false)))
	py := startPySP(t, "onelogin_sp.py", h)
	h.AddSP(t, py.Base+"/metadata")
	lasso := startPySP(t, "lasso_sp.py", h)
	h.AddSP(t, lasso.Base+"/metadata")
	if res := loginAt(t, fresh.Base, u.UserName, u.Password); !res.OK {
		t.Errorf("during the overlap, an SP with the new metadata was refused: %v", res.Errors)
	}
	elapsed := time.Since(rotated)
	t.Logf("the overlap checks took %s of the %s overlap", elapsed.Round(time.Millisecond), overlap)
	if elapsed >= overlap {
		t.Fatalf("the overlap checks took %s, longer than the %s overlap: the machine is too slow for this test's timing", elapsed, overlap)
	}

	time.Sleep(time.Until(rotated.Add(overlap + 500*time.Millisecond)))
	_, after := parseIdPMetadata(t, fetch(t, h.MetadataURL()))
	if len(after) != 1 || !after[0].Equal(during[1]) {
		t.Errorf("after the overlap the metadata should list only the new certificate; got %d", len(after))
	}
	if res := loginAt(t, fresh.Base, u.UserName, u.Password); !res.OK {
		t.Errorf("after the switch, gosaml2 with the overlap metadata was refused: %v", res.Errors)
	}
	if res := loginAt(t, py.Base, u.UserName, u.Password); !res.OK {
		t.Errorf("after the switch, onelogin with the overlap metadata was refused: %v (%s)", res.Errors, res.Reason)
	}
	if res := loginAt(t, lasso.Base, u.UserName, u.Password); !res.OK {
		t.Errorf("after the switch, lasso with the overlap metadata was refused: %v", res.Errors)
	}
	if res := loginAt(t, stale.Base, u.UserName, u.Password); res.OK {
		t.Errorf("after the switch, an SP holding only the old certificate still accepted the response: the old key still signs")
	}
}
