package store

import (
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestBlobLocksDoNotAccumulateOn404 is the attack of a client that PUTs
// blobs to random ids nobody reserved: each answer is a 404, and each must
// leave nothing behind. A lock kept per id ever tried grew by ~146 B per
// request, about 630 MB a day per address at the allowed rate.
func TestBlobLocksDoNotAccumulateOn404(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const tries = 1000
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < tries/4; i++ {
				id := make([]byte, 16)
				rand.Read(id)
				if err := s.PutBlob(id, []byte("x"), time.Now(), 1<<20); !errors.Is(err, ErrNotFound) {
					t.Errorf("PUT to an unreserved id: %v, want ErrNotFound", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := s.blobLocks.len(); n != 0 {
		t.Fatalf("%d blob locks left after %d PUTs to unreserved ids, want 0", n, tries)
	}
}
