package store

import (
	"errors"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestAccountKeyRegisteredOnce: a list replayed under a new handle is
// refused (ErrKeyTaken), and the handle stays free.
func TestAccountKeyRegisteredOnce(t *testing.T) {
	s, _ := open(t)
	if err := s.CreateAccount(Account{Handle: "victim", AccountKey: []byte("key"), Version: 1, DeviceList: []byte("l")}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(Account{Handle: "alias", AccountKey: []byte("key"), Version: 1, DeviceList: []byte("l")}); !errors.Is(err, ErrKeyTaken) {
		t.Fatalf("second handle for one key: %v, want ErrKeyTaken", err)
	}
	if _, err := s.Account("alias"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused alias: %v", err)
	}
	if err := s.CreateAccount(Account{Handle: "alias", AccountKey: []byte("other"), Version: 1, DeviceList: []byte("l")}); err != nil {
		t.Fatalf("the handle with its own key: %v", err)
	}
}

// TestSchema3AliasesRetiredOnUpgrade: a database from before keys were
// unique may hold an alias (the victim's old list under another handle).
// On upgrade the key stays with the handle whose list is newest (only the
// key's owner can publish a newer one); the alias is no longer returned.
func TestSchema3AliasesRetiredOnUpgrade(t *testing.T) {
	s, dir := open(t)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		for _, a := range []Account{
			{Handle: "aaa-alias", AccountKey: []byte("key"), Version: 1, DeviceList: []byte("v1")},
			{Handle: "victim", AccountKey: []byte("key"), Version: 2, DeviceList: []byte("v2")},
			{Handle: "solo", AccountKey: []byte("solo"), Version: 1, DeviceList: []byte("s")},
		} {
			if err := b.Put([]byte(a.Handle), encodeAccount(a)); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bucketAkeys); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put([]byte("schema"), []byte{3})
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatalf("opening a schema-3 database: %v", err)
	}
	defer s.Close()
	if a, err := s.Account("victim"); err != nil || a.Version != 2 {
		t.Fatalf("victim after upgrade: %+v, %v", a, err)
	}
	if _, err := s.Account("solo"); err != nil {
		t.Fatalf("an account without alias after upgrade: %v", err)
	}
	if _, err := s.Account("aaa-alias"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("alias after upgrade: %v, want ErrNotFound", err)
	}
	if err := s.CreateAccount(Account{Handle: "another", AccountKey: []byte("key"), Version: 1, DeviceList: []byte("v1")}); !errors.Is(err, ErrKeyTaken) {
		t.Fatalf("a new alias after upgrade: %v, want ErrKeyTaken", err)
	}
}
